import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { bicubicAxisWeights, gridSampleBicubic } from '../../../layers/ops/grid_sample';
import { expectClose } from '../../helpers/expect_close';
import { fixturePath, loadReference } from '../../helpers/fixtures';

const toTensor3 = (h: { data: ArrayLike<number>; shape: number[] }) => tf.tensor3d(Array.from(h.data), h.shape as [number, number, number]);

describe('gridSampleBicubic', () => {
  it('weights: identity at the table size, and 2 -> 1 averages the two sources', () => {
    // (i + 0.5) / side is rounded to float32 as in the reference's grid, so only a power-of-two side is exact
    for (const side of [4, 6, 24]) {
      const w = bicubicAxisWeights(side, side);
      for (let i = 0; i < side; i++) for (let j = 0; j < side; j++) expect(w[i * side + j]).to.be.closeTo(i === j ? 1 : 0, side === 4 ? 0 : 1e-6);
    }
    // src 0.5: taps (-1, 0, 1, 2) -> clamped (0, 0, 1, 1), weights cc2(1.5) + cc1(0.5) = -0.09375 + 0.59375 each
    expect(Array.from(bicubicAxisWeights(1, 2))).to.deep.equal([0.5, 0.5]);
  });

  it('weights: every row sums to 1 (border padding keeps the weight of clamped taps)', () => {
    for (const [n, side] of [[1, 4], [3, 4], [8, 4], [12, 4], [2, 24], [37, 24]] as const) {
      const w = bicubicAxisWeights(n, side);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let j = 0; j < side; j++) s += w[i * side + j]!;
        expect(s).to.be.closeTo(1, 1e-6);
      }
    }
  });

  const ref = loadReference(fixturePath('vision', 'grid_sample.safetensors'));
  const names = [...ref.tensors.keys()].filter((k) => k.startsWith('out:')).map((k) => k.slice(4));

  it('matches F.grid_sample(bicubic, border, align_corners=False): identity, up, down, mixed, non-square', () => {
    expect(names.length).to.be.greaterThan(8);
    for (const name of names) {
      const out = ref.get(`out:${name}`);
      const y = tf.tidy(() => gridSampleBicubic(toTensor3(ref.get(`table:${name}`)), out.shape[0]!, out.shape[1]!));
      expectClose(y, out, { atol: 5e-6, label: name });
      y.dispose();
    }
  });

  it('its gradient w.r.t. the table matches torch autograd', () => {
    for (const name of names) {
      const out = ref.get(`out:${name}`);
      const table = toTensor3(ref.get(`table:${name}`));
      const cot = toTensor3(ref.get(`cot:${name}`));
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(gridSampleBicubic(t as tf.Tensor3D, out.shape[0]!, out.shape[1]!), cot)))(table);
      expectClose(g, ref.get(`grad:${name}`), { atol: 1e-5, label: `grad ${name}` });
      tf.dispose([table, cot, g]);
    }
  });
});
