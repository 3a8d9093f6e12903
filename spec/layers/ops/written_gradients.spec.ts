// The ops whose gradients are written out (customGrad, to keep fewer tensors for the backward pass) must give
// autodiff's gradients bit for bit where the model uses them, including how rmsNorm's add up with the residual
// branch it sits on: otherwise training trajectories move (spec/train/saved.spec.ts replays a finetune and
// compares with transformers). The other ops' inputs have no second use in the model.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { siluMul } from '../../../layers/ops/activations';
import { scaledDotProductAttention } from '../../../layers/ops/attention';
import { MASK_MIN } from '../../../layers/ops/causal_mask';
import { rmsNorm } from '../../../layers/ops/rms_norm';
import { applyRotaryPosEmb } from '../../../layers/ops/rotary';
import { applyRotaryVision } from '../../../layers/ops/vision_rotary';
import { setFusedOpsOffForTests } from '../../../lib/kernels/tf_fused';

const R = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

/** grads of sum(f(xs) * w) (+ sum(xs[0] * w2): a residual use of the first input) for the op and its reference */
function expectSameGrads(op: (...xs: tf.Tensor[]) => tf.Tensor, reference: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[], residual = false): void {
  const y = tf.tidy(() => reference(...xs));
  const w = R(y.shape, 99), w2 = R(xs[0]!.shape, 98);
  const loss = (f: (...a: tf.Tensor[]) => tf.Tensor) => (...a: tf.Tensor[]) => {
    const main = tf.sum(tf.mul(f(...a), w));
    return residual ? tf.add(main, tf.sum(tf.mul(a[0]!, w2))) : main;
  };
  const got = tf.grads(loss(op))(xs), want = tf.grads(loss(reference))(xs);
  expect(maxDiff(op(...xs), y), 'forward').to.equal(0);
  got.forEach((g, i) => {
    expect(maxDiff(want[i]!, tf.zerosLike(want[i]!)), `input ${i} has a gradient`).to.be.above(0);
    expect(maxDiff(g, want[i]!), `gradient of input ${i}`).to.equal(0);
  });
  tf.dispose([y, w, w2, ...got, ...want]);
}

describe('written-out gradients equal autodiff bit for bit', () => {
  // the training path: the native backend's fused inference ops (lib/kernels/tf_fused.ts, within float32 rounding of
  // these, spec/lib/fused_ops.spec.ts) would otherwise give the forwards taken here outside tf.grads
  before(() => setFusedOpsOffForTests(true));
  after(() => setFusedOpsOffForTests(false));

  it('rmsNorm', () => {
    const ref = (x: tf.Tensor, w: tf.Tensor) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), w);
    expectSameGrads((x, w) => rmsNorm(x, w, 1e-5), ref, [R([2, 7, 24], 1), R([24], 2)], true);
    expectSameGrads((x, w) => rmsNorm(x, w, 1e-5), ref, [R([2, 7, 24], 1), R([24], 2)]);
  });

  it('siluMul', () => {
    expectSameGrads(siluMul, (g, u) => tf.mul(u, tf.mul(g, tf.sigmoid(g))), [R([3, 5, 16], 3), R([3, 5, 16], 4)]);
  });

  it('applyRotaryPosEmb (partial, interleaved) and applyRotaryVision (half split)', () => {
    const cos = R([2, 5, 8], 5), sin = R([2, 5, 8], 6);
    const refText = (x: tf.Tensor) => {
      const xr = tf.slice(x, [0, 0, 0, 0], [2, 5, 3, 8]);
      const [x1, x2] = tf.split(tf.reshape(xr, [10, 3, 4, 2]), 2, -1);
      const rot = tf.reshape(tf.concat([tf.neg(x2!), x1!], -1), [2, 5, 3, 8]);
      const out = tf.add(tf.mul(xr, tf.expandDims(cos, 2)), tf.mul(rot, tf.expandDims(sin, 2)));
      return tf.concat([out, tf.slice(x, [0, 0, 0, 8], [2, 5, 3, 8])], -1);
    };
    expectSameGrads((x) => applyRotaryPosEmb(x as tf.Tensor4D, cos as tf.Tensor3D, sin as tf.Tensor3D), refText, [R([2, 5, 3, 16], 7)]);
    const c2 = R([6, 16], 8), s2 = R([6, 16], 9);
    const refVision = (x: tf.Tensor) => {
      const [x1, x2] = tf.split(x, 2, -1);
      return tf.add(tf.mul(x, tf.expandDims(c2, 1)), tf.mul(tf.concat([tf.neg(x2!), x1!], -1), tf.expandDims(s2, 1)));
    };
    expectSameGrads((x) => applyRotaryVision(x as tf.Tensor3D, c2 as tf.Tensor2D, s2 as tf.Tensor2D), refVision, [R([6, 2, 16], 10)]);
  });

  it('scaledDotProductAttention (grouped heads, causal mask)', () => {
    const [B, H, Hkv, L, Dh] = [2, 4, 2, 6, 8];
    const mask = tf.tidy(() => tf.reshape(tf.where(tf.lessEqual(tf.reshape(tf.range(0, L), [1, L]), tf.reshape(tf.range(0, L), [L, 1])), 0, MASK_MIN), [1, 1, L, L])) as tf.Tensor4D;
    const ref = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => {
      const G = H / Hkv;
      const qg = tf.reshape(tf.mul(q, 0.3), [B * Hkv, G * L, Dh]);
      const scores = tf.add(tf.reshape(tf.matMul(qg, tf.reshape(k, [B * Hkv, L, Dh]), false, true), [B, H, L, L]), mask);
      const out = tf.matMul(tf.reshape(tf.softmax(scores), [B * Hkv, G * L, L]), tf.reshape(v, [B * Hkv, L, Dh]));
      return tf.transpose(tf.reshape(out, [B, H, L, Dh]), [0, 2, 1, 3]);
    };
    const op = (q: tf.Tensor, k: tf.Tensor, v: tf.Tensor) => scaledDotProductAttention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, mask, 0.3);
    expectSameGrads((q, k, v) => tf.reshape(op(q!, k!, v!), [B, L, H * Dh]), (q, k, v) => tf.reshape(ref(q!, k!, v!), [B, L, H * Dh]),
      [R([B, H, L, Dh], 11), R([B, Hkv, L, Dh], 12), R([B, Hkv, L, Dh], 13)]);
    mask.dispose();
  });
});
