// lib/kernels/tf_fused.ts + lib/native/fused_ops.c, the package's own TensorFlow ops on the native CPU backend:
// - AdamW's update, one in-place op per parameter, must give the same bits as the tfjs ops it replaces (the path the
//   wasm suite and the torch reference in adamw.spec.ts check), over several steps, with and without weight decay, on
//   one thread's span and on several;
// - RMSNorm and the MLP's SiLU·mul at inference must give the tfjs ops' values within float32 rounding.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { canAdamwInPlace, rmsNormFused, setFusedOpsOffForTests, siluMulHalvesFused } from '../../lib/kernels/tf_fused';
import { readStatus } from '../../lib/native/paths';
import { siluMul } from '../../layers/ops/activations';
import { AdamW } from '../../train/adamw';
import { expectClose } from '../helpers/expect_close';
import { onNativeBackendHooks } from '../helpers/on_backend';

if (readStatus()?.ok) {
  describe('fused ops on the native backend (lib/native/fused_ops.c)', () => {
    onNativeBackendHooks();
    after(() => setFusedOpsOffForTests(false));

    // [600, 700] is 420k elements: split over the threads; the others run on one
    const shapes: Record<string, number[]> = { 'w.big': [600, 700], 'w.small': [33, 65], 'b.bias': [7] };

    /** 4 steps of AdamW from the same start and gradients; the params and both moments, as bits. */
    async function run(inPlace: boolean): Promise<Map<string, Uint32Array>> {
      setFusedOpsOffForTests(!inPlace);
      expect(canAdamwInPlace()).to.equal(inPlace);
      const params = new Map(Object.entries(shapes).map(([k, s], i) => [k, tf.tidy(() => tf.variable(tf.randomNormal(s, 0, 1, 'float32', i + 1), true, `${k}.${inPlace}`))]));
      const opt = new AdamW(params, [{ keys: ['w.big', 'w.small'], weightDecay: 0.1 }, { keys: ['b.bias'], weightDecay: 0 }], { lr: 3e-3, betas: [0.9, 0.999], eps: 1e-8 });
      for (let step = 0; step < 4; step++) {
        const grads = new Map([...params].map(([k, p], i) => [k, tf.randomNormal(p.shape, 0, 0.5 + step, 'float32', 100 * step + i + 1)]));
        // (seeds from 1: tfjs takes a seed of 0 as none)
    // step 2 leaves the bias out: it must not move (torch skips a parameter without a gradient)
        if (step === 2) grads.get('b.bias')!.dispose(), grads.delete('b.bias');
        opt.step(grads);
        tf.dispose([...grads.values()]);
      }
      const out = new Map<string, Uint32Array>();
      for (const [k, read] of opt.stateEntries().tensors) out.set(k, new Uint32Array(Float32Array.from((await read()).data as Float32Array).buffer));
      for (const [k, p] of params) out.set(k, new Uint32Array((p.dataSync() as Float32Array).slice().buffer));
      opt.dispose();
      tf.dispose([...params.values()]);
      return out;
    }

    it('Glm46vAdamW gives the bits of the tfjs ops, for the parameters and both moments', async () => {
      const before = tf.memory().numTensors;
      const ops = await run(false), fused = await run(true);
      expect(tf.memory().numTensors, 'nothing left behind').to.equal(before);
      expect([...fused.keys()].sort()).to.deep.equal([...ops.keys()].sort());
      for (const [k, want] of ops) {
        const got = fused.get(k)!;
        const at = want.findIndex((x, i) => x !== got[i]);
        expect(at, `${k}: first differing element ${at}: ${new Float32Array(got.buffer)[at]} vs ${new Float32Array(want.buffer)[at]}`).to.equal(-1);
      }
    });

    const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

    it('Glm46vRmsNorm: the tfjs ops\' values on rows of [B, L, D] and [N, D], one thread or several', () => {
      for (const shape of [[2, 3, 64], [300, 512], [1, 1, 1024]]) {
        const x = rnd(shape, 11), w = rnd([shape.at(-1)!], 12);
        const want = tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), w));
        const got = rmsNormFused(x, w, 1e-5)!;
        expect(got.shape).to.deep.equal(shape);
        expectClose(got, want, { atol: 1e-5, rtol: 1e-6, label: `rmsNorm ${JSON.stringify(shape)}` });
        tf.dispose([x, w, want, got]);
      }
      const x = rnd([2, 8], 13);
      const w4 = rnd([4], 14);
      expect(() => rmsNormFused(x, w4, 1e-5)).to.throw(/Glm46vRmsNorm: input 1 must be float32 with 8 elements/);
      tf.dispose([x, w4]);
    });

    it('Glm46vSiluMul: up * silu(gate) from gate_up\'s two halves, the tfjs ops\' values; an odd width is refused', () => {
      for (const shape of [[3, 10], [200, 2 * 700], [2, 1, 64]]) {
        const gu = rnd(shape, 21);
        const want = tf.tidy(() => siluMul(...(tf.split(gu, 2, -1) as [tf.Tensor, tf.Tensor])));
        const got = siluMulHalvesFused(gu)!;
        expect(got.shape).to.deep.equal(want.shape);
        expectClose(got, want, { atol: 1e-6, rtol: 1e-6, label: `siluMul ${JSON.stringify(shape)}` });
        tf.dispose([gu, want, got]);
      }
      const odd = rnd([2, 7], 22);
      expect(() => siluMulHalvesFused(odd)).to.throw(/Glm46vSiluMul: the last axis of gate_up must be even/);
      odd.dispose();
    });
  });
}
