import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { applyRotaryVision, rotateHalf } from '../../../layers/ops/vision_rotary';
import { expectClose } from '../../helpers/expect_close';

describe('applyRotaryVision (NeoX half-split, full head dim)', () => {
  it('rotate_half([1, 2, 3, 4]) = [-3, -4, 1, 2]', () => {
    const y = rotateHalf(tf.tensor1d([1, 2, 3, 4]));
    expect(Array.from(y.dataSync())).to.deep.equal([-3, -4, 1, 2]);
    y.dispose();
  });

  it('is the identity at angle 0 and pairs dims i and i + Dh/2 (hand-worked 90 and 180 degree turns)', () => {
    const x = tf.tensor3d([[[1, 2, 3, 4], [5, 6, 7, 8]], [[1, 2, 3, 4], [5, 6, 7, 8]], [[1, 2, 3, 4], [5, 6, 7, 8]]]); // [N=3, H=2, 4]
    // token 0: angle 0; token 1: pair (0, 2) turns 90 degrees, pair (1, 3) stays; token 2: both pairs turn 180 degrees
    const cos = tf.tensor2d([[1, 1, 1, 1], [0, 1, 0, 1], [-1, -1, -1, -1]]);
    const sin = tf.tensor2d([[0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]);
    const y = applyRotaryVision(x, cos, sin);
    expectClose(y, [1, 2, 3, 4, 5, 6, 7, 8, -3, 2, 1, 4, -7, 6, 5, 8, -1, -2, -3, -4, -5, -6, -7, -8], { atol: 0, label: 'rotary' });
    tf.dispose([x, cos, sin, y]);
  });

  it('matches x*cos + rotate_half(x)*sin element by element for random angles, and its gradient is the transpose', () => {
    const [N, H, Dh] = [5, 3, 8];
    const x = tf.randomNormal([N, H, Dh], 0, 1, 'float32', 3) as tf.Tensor3D;
    const ang = tf.randomUniform([N, Dh / 2], -3, 3, 'float32', 4);
    const full = tf.concat([ang, ang], -1) as tf.Tensor2D;
    const cos = tf.cos(full), sin = tf.sin(full);
    const y = applyRotaryVision(x, cos, sin);
    const xs = x.arraySync(), cs = cos.arraySync(), ss = sin.arraySync();
    const want: number[] = [];
    for (let n = 0; n < N; n++) for (let h = 0; h < H; h++) for (let d = 0; d < Dh; d++) {
      const rot = d < Dh / 2 ? -xs[n]![h]![d + Dh / 2]! : xs[n]![h]![d - Dh / 2]!;
      want.push(xs[n]![h]![d]! * cs[n]![d]! + rot * ss[n]![d]!);
    }
    expectClose(y, want, { atol: 1e-6, label: 'rotary random' });
    // a rotation is orthogonal: d sum(y * dy) / dx = R^T dy, and R^T = the rotation by -angle
    const dy = tf.randomNormal([N, H, Dh], 0, 1, 'float32', 5);
    const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(applyRotaryVision(t as tf.Tensor3D, cos, sin), dy)))(x);
    expectClose(g, applyRotaryVision(dy as tf.Tensor3D, cos, tf.neg(sin)), { atol: 1e-6, label: 'rotary grad' });
    tf.dispose([x, ang, full, cos, sin, y, dy, g]);
  });
});
