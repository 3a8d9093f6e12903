// The GLM text rotary ops: inv_freq, M-RoPE tables (sections over the frequency index) and the interleaved partial rotation.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { applyRotaryPosEmb, mropeCosSin, ropeInvFreq } from '../../../layers/ops/rotary';
import { expectClose } from '../../helpers/expect_close';

/** [3, 1, L] positions from three rows */
const rows = (t: number[], h: number[], w: number[]) => tf.tensor3d([[t], [h], [w]], undefined, 'int32');

describe('ropeInvFreq', () => {
  it('is 1 / theta^(2j / R), rounded to float32', () => {
    expect(Array.from(ropeInvFreq(10000, 8))).to.deep.equal([1, 0.1, 0.01, 0.001].map(Math.fround));
    expect(ropeInvFreq(500000, 64).length).to.equal(32);
  });
});

describe('mropeCosSin', () => {
  it('takes frequency j of section i from position row i % 3 and repeats each angle for its pair', () => {
    // section [1, 2, 1]: j=0 from t, j=1,2 from h, j=3 from w
    const inv = tf.tensor1d([1, 0.5, 0.25, 0.125]);
    const [cos, sin] = mropeCosSin(rows([3, 0], [5, 1], [7, 2]), inv, [1, 2, 1]);
    expect(cos.shape).to.deep.equal([1, 2, 8]);
    const angles0 = [3 * 1, 5 * 0.5, 5 * 0.25, 7 * 0.125];
    const angles1 = [0, 0.5, 0.25, 0.25];
    const pairs = (a: number[], f: (x: number) => number) => a.flatMap((x) => [f(x), f(x)]);
    expectClose(cos, [...pairs(angles0, Math.cos), ...pairs(angles1, Math.cos)], { atol: 1e-6, label: 'cos' });
    expectClose(sin, [...pairs(angles0, Math.sin), ...pairs(angles1, Math.sin)], { atol: 1e-6, label: 'sin' });
    [inv, cos, sin].forEach((t) => t.dispose());
  });

  it('skips an empty section', () => {
    const inv = tf.tensor1d([1, 0.5]);
    const [cos, sin] = mropeCosSin(rows([2], [3], [6]), inv, [1, 0, 1]); // j=0 from t (2), j=1 from w (6 * 0.5)
    expectClose(sin, [Math.sin(2), Math.sin(2), Math.sin(3), Math.sin(3)], { atol: 1e-6, label: 'sin' });
    [inv, cos, sin].forEach((t) => t.dispose());
  });
});

describe('applyRotaryPosEmb', () => {
  let x: tf.Tensor4D;
  before(() => {
    x = tf.tensor4d([[[[1, 2, 3, 4, 5, 6]]]]); // [B=1, L=1, H=1, Dh=6]
  });
  after(() => x.dispose());

  it('is the identity at position 0', () => {
    const inv = tf.tensor1d([1, 0.1]);
    const [cos, sin] = mropeCosSin(rows([0], [0], [0]), inv, [1, 1, 0]);
    const y = applyRotaryPosEmb(x, cos, sin);
    expectClose(y, x, { atol: 0, label: 'position 0' });
    [inv, cos, sin, y].forEach((t) => t.dispose());
  });

  it('rotates the pairs (0,1), (2,3) of the first R = 4 dims by their angles and passes dims 4, 5 through', () => {
    const a = 0.7, b = -1.3;
    const cos = tf.tensor3d([[[a, a, b, b].map(Math.cos)]]);
    const sin = tf.tensor3d([[[a, a, b, b].map(Math.sin)]]);
    const y = applyRotaryPosEmb(x, cos, sin);
    const [c0, s0, c1, s1] = [Math.cos(a), Math.sin(a), Math.cos(b), Math.sin(b)];
    // rotate_half_llm: (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)
    expectClose(y, [1 * c0 - 2 * s0, 2 * c0 + 1 * s0, 3 * c1 - 4 * s1, 4 * c1 + 3 * s1, 5, 6], { atol: 1e-6, label: 'rotated' });
    [cos, sin, y].forEach((t) => t.dispose());
  });

  it('keeps the norm of each pair and broadcasts over heads', () => {
    const xs = tf.randomNormal([2, 3, 4, 16], 0, 1, 'float32', 1) as tf.Tensor4D;
    const pos = tf.tensor3d([[[0, 1, 2], [5, 6, 7]], [[0, 1, 1], [5, 5, 6]], [[0, 2, 1], [5, 6, 5]]], undefined, 'int32');
    const inv = tf.tensor1d(ropeInvFreq(10000, 8));
    const [cos, sin] = mropeCosSin(pos, inv, [2, 1, 1]);
    const y = applyRotaryPosEmb(xs, cos, sin);
    const pairNorm = (t: tf.Tensor) => tf.tidy(() => tf.sum(tf.square(tf.reshape(tf.slice(t, [0, 0, 0, 0], [2, 3, 4, 8]), [2, 3, 4, 4, 2])), -1));
    const [ny, nx] = [pairNorm(y), pairNorm(xs)];
    expectClose(ny, nx, { atol: 1e-5, label: 'pair norms' });
    // one head rotated alone equals that head of the batched call
    const h2 = tf.slice(xs, [0, 0, 2, 0], [2, 3, 1, 16]) as tf.Tensor4D;
    const y2 = applyRotaryPosEmb(h2, cos, sin);
    expectClose(y2, tf.slice(y, [0, 0, 2, 0], [2, 3, 1, 16]), { atol: 0, label: 'head 2' });
    [xs, pos, inv, cos, sin, y, ny, nx, h2, y2].forEach((t) => t.dispose());
  });

  it('has the inverse rotation as its gradient, and agrees with finite differences', () => {
    const xs = tf.randomNormal([1, 2, 2, 6], 0, 1, 'float32', 2) as tf.Tensor4D;
    const w = tf.randomNormal([1, 2, 2, 6], 0, 1, 'float32', 3) as tf.Tensor4D;
    const cos = tf.tensor3d([[[0.3, 0.3, 2.1, 2.1].map(Math.cos), [-1, -1, 0.5, 0.5].map(Math.cos)]]);
    const sin = tf.tensor3d([[[0.3, 0.3, 2.1, 2.1].map(Math.sin), [-1, -1, 0.5, 0.5].map(Math.sin)]]);
    const f = (t: tf.Tensor) => tf.sum(tf.mul(applyRotaryPosEmb(t as tf.Tensor4D, cos, sin), w));
    const g = tf.grad(f)(xs);
    // f is linear, f = <R x, w>, so df/dx = R^T w = rotation by the negative angles
    const negSin = tf.neg(sin) as tf.Tensor3D;
    const expected = applyRotaryPosEmb(w, cos, negSin);
    expectClose(g, expected, { atol: 1e-6, label: 'autodiff vs R^T w' });
    // central differences on a few coordinates
    const base = xs.dataSync();
    const gd = g.dataSync();
    for (const i of [0, 1, 3, 5, 13, 22]) {
      const eps = 1e-2;
      const at = (d: number) => tf.tidy(() => {
        const v = Float32Array.from(base);
        v[i]! += d;
        return f(tf.tensor(v, xs.shape)).dataSync()[0]!;
      });
      const fd = (at(eps) - at(-eps)) / (2 * eps);
      expect(Math.abs(fd - gd[i]!), `d/dx[${i}]: finite difference ${fd}, autodiff ${gd[i]}`).to.be.lessThan(1e-3);
    }
    [xs, w, cos, sin, g, negSin, expected].forEach((t) => t.dispose());
  });
});
