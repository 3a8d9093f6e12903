// lib/kernels/tf_fused.ts + lib/native/fused_ops.c, the package's own TensorFlow ops on the native CPU backend:
// - AdamW's update, one in-place op per parameter, must give the same bits as the tfjs ops it replaces (the path the
//   wasm suite and the torch reference in adamw.spec.ts check), over several steps, with and without weight decay, on
//   one thread's span and on several;
// - RMSNorm and the MLP's SiLU·mul at inference must give the tfjs ops' values within float32 rounding, and so must
//   their backwards (the gradients autodiff takes through the written-out ones);
// - the one-token product (lib/native/gemv.c) must give TensorFlow's MatMul (+ Add) within float32 rounding on each
//   path this CPU has, for widths that are and are not multiples of its vector and block sizes;
// (each op with a vectorised kernel is checked on every instruction set this CPU has: AVX-512, AVX2 + FMA, baseline)
// - a decode step's attention over a preallocated cache must give the tfjs ops' values (layers/ops/attention.ts with
//   the fused ops off) within float32 rounding, with and without a mask, a kv head's rows whole or in chunks;
// - softmax(x + mask) must give the tfjs ops' values within float32 rounding, for each broadcast form of the mask
//   the attention uses;
// - the attention's q, k, v laid out heads first, q and k rotated (text and vision), must give the tfjs path's bits
//   (the same float32 operations);
// - the cache's in-place write must leave the buffer InplaceUpdate leaves.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { DECODE_ROWS, canAdamwInPlace, decodeAttentionFused, linearFused, qkvHeadsFused, visionHeadsFused, softmaxInPlace, writePositionsFused, rmsNormFused, rmsNormGradFused, setFusedOpsOffForTests, siluMulFused, siluMulGradFused, siluMulHalvesFused } from '../../lib/kernels/tf_fused';
import { FUSED_OPS, kernelIsaForTests } from '../../lib/native/load';
import * as fs from 'fs';
import * as path from 'path';
import { readStatus } from '../../lib/native/paths';
import { siluMul } from '../../layers/ops/activations';
import { rmsNorm } from '../../layers/ops/rms_norm';
import { cachedAttention } from '../../layers/ops/attention';
import { mropeCosSin, rotaryTables } from '../../layers/ops/rotary';
import { applyRotation, interleavedRotation } from '../../layers/ops/rotation';
import { applyRotaryVision } from '../../layers/ops/vision_rotary';
import { writePositions } from '../../lib/kernels/tf_inplace';
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

    it('the package checks for every op it calls, and the addon built from these sources registers each', () => {
      // an addon built from older sources lacks ops: the package must then turn the fused ops off, not call them
      const source = ['tf_fused.ts', 'tf_bf16.ts'].map((f) => fs.readFileSync(path.join(__dirname, '../../lib/kernels', f), 'utf8')).join('\n');
      const called = [...new Set([...source.matchAll(/'(Glm46v\w+)'/g)].map((m) => m[1]!))].sort();
      expect(called.length).to.be.greaterThan(10);
      expect([...FUSED_OPS].sort()).to.deep.equal(called);
      expect(canAdamwInPlace(), 'registered').to.equal(true);
    });


    /** fn(isa) with the kernels on each instruction set this CPU has, the best one restored after. */
    function onEachIsa(fn: (isa: string) => void): void {
      const sets = ['base', 'avx2', 'avx512'], best = kernelIsaForTests()!;
      expect(sets, `the set taken: ${best}`).to.include(best);
      try {
        for (const isa of sets.slice(0, sets.indexOf(best) + 1)) {
          expect(kernelIsaForTests(isa)).to.equal(isa);
          fn(isa);
        }
      } finally {
        kernelIsaForTests(best);
      }
    }

    it('Glm46vRmsNorm: the tfjs ops\' values on rows of [B, L, D] and [N, D], one thread or several', () => onEachIsa((isa) => {
      for (const shape of [[2, 3, 64], [300, 512], [1, 1, 1024], [4, 37]]) {
        const x = rnd(shape, 11), w = rnd([shape.at(-1)!], 12);
        const want = tf.tidy(() => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), w));
        const got = rmsNormFused(x, w, 1e-5)!;
        expect(got.shape).to.deep.equal(shape);
        expectClose(got, want, { atol: 1e-5, rtol: 1e-6, label: `${isa} rmsNorm ${JSON.stringify(shape)}` });
        tf.dispose([x, w, want, got]);
      }
      const x = rnd([2, 8], 13);
      const w4 = rnd([4], 14);
      expect(() => rmsNormFused(x, w4, 1e-5)).to.throw(/Glm46vRmsNorm: input 1 must be float32 with 8 elements/);
      tf.dispose([x, w4]);
    }));

    it('the thread pool: back-to-back ops of different sizes, a MatMul between them, give their first bits every time', () => {
      // the workers claim chunks of each job as they wake; a late one must neither hold a job up nor touch the next
      const x = rnd([300, 512], 15), w = rnd([512], 16), gu = rnd([257, 2 * 700], 17), m = rnd([512, 512], 18);
      const bits = (t: tf.Tensor) => new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
      const once = () => {
        const outs = tf.tidy(() => {
          const p = tf.matMul(x, m); // TensorFlow's own threads busy just before
          return [rmsNormFused(p, w, 1e-5)!, siluMulHalvesFused(gu)!, rmsNormFused(x, w, 1e-5)!];
        });
        const got = outs.map(bits);
        tf.dispose(outs);
        return got;
      };
      const first = once();
      for (let i = 0; i < 200; i++) {
        once().forEach((b, k) => expect(b.findIndex((v, j) => v !== first[k]![j]), `call ${i}, op ${k}: first element that differs`).to.equal(-1));
      }
      tf.dispose([x, w, gu, m]);
    });

    it('Glm46vSiluMul: up * silu(gate) from gate_up\'s two halves or from two tensors, the tfjs ops\' values; an odd width is refused', () => onEachIsa((isa) => {
      for (const shape of [[3, 10], [200, 2 * 700], [2, 1, 64]]) {
        const gu = tf.mul(rnd(shape, 21), 30); // past exp's range both ways: silu is 0 and x there
        const [gate, up] = tf.split(gu, 2, -1);
        setFusedOpsOffForTests(true); // the tfjs ops
        const want = siluMul(gate!, up!);
        setFusedOpsOffForTests(false);
        for (const [form, got] of [['halves', siluMulHalvesFused(gu)!], ['pair', siluMulFused(gate!, up!)!]] as const) {
          expect(got.shape).to.deep.equal(want.shape);
          expectClose(got, want, { atol: 1e-6, rtol: 1e-6, label: `${isa} siluMul ${form} ${JSON.stringify(shape)}` });
          got.dispose();
        }
        tf.dispose([gu, gate!, up!, want]);
      }
      const odd = rnd([2, 7], 22);
      expect(() => siluMulHalvesFused(odd)).to.throw(/Glm46vSiluMul: the last axis of gate_up must be even/);
      odd.dispose();
    }));

    it('Glm46vRmsNormGrad, Glm46vSiluMulGrad: the gradients of the tfjs ops through the written-out backwards', () => onEachIsa((isa) => {
      /** d sum(f(a, b) * dy) / d(a, b) with the tfjs ops */
      const tfjsGrads = (f: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, a: tf.Tensor, b: tf.Tensor, dy: tf.Tensor) => {
        setFusedOpsOffForTests(true);
        try {
          return tf.grads((u: tf.Tensor, v: tf.Tensor) => tf.sum(tf.mul(f(u, v), dy)))([a, b]);
        } finally {
          setFusedOpsOffForTests(false);
        }
      };
      for (const shape of [[2, 3, 64], [300, 512], [4, 37]]) {
        const x = rnd(shape, 81), w = rnd([shape.at(-1)!], 82), dy = rnd(shape, 83);
        const [dxWant, dwWant] = tfjsGrads((u, v) => rmsNorm(u, v, 1e-5), x, w, dy);
        const [dx1, dx2, dw] = rmsNormGradFused(x, w, dy, 1e-5)!;
        const dx = tf.add(dx1, dx2);
        expectClose(dx, dxWant!, { atol: 1e-5, rtol: 1e-5, label: `${isa} rmsNorm dx ${JSON.stringify(shape)}` });
        // dweight sums over the rows: float32 rounding of about sqrt(rows) terms
        expectClose(dw, dwWant!, { atol: 1e-4, rtol: 1e-5, label: `${isa} rmsNorm dweight ${JSON.stringify(shape)}` });
        tf.dispose([x, w, dy, dxWant!, dwWant!, dx1, dx2, dw, dx]);
      }
      for (const shape of [[3, 10], [200, 700], [2, 1, 37]]) {
        const gate = tf.mul(rnd(shape, 84), 30), up = rnd(shape, 85), dy = rnd(shape, 86);
        const [dgWant, duWant] = tfjsGrads((g, u) => siluMul(g, u), gate, up, dy);
        const [dg, du] = siluMulGradFused(gate, up, dy)!;
        expectClose(dg, dgWant!, { atol: 1e-6, rtol: 1e-5, label: `${isa} siluMul dgate ${JSON.stringify(shape)}` });
        expectClose(du, duWant!, { atol: 1e-6, rtol: 1e-5, label: `${isa} siluMul dup ${JSON.stringify(shape)}` });
        tf.dispose([gate, up, dy, dgWant!, duWant!, dg, du]);
      }
    }));

    it('Glm46vLinear: TensorFlow\'s MatMul (+ bias) on every path this CPU has; more rows or a wrong shape are refused', () => {
      onEachIsa((isa) => {
        // [M, K] x [N, K]: K off the 16- and 8-lane widths, N off the 4- and 8-row blocks, N large enough to be split
        for (const [M, N, K] of [[1, 13, 37], [3, 1021, 1000], [DECODE_ROWS, 64, 16], [1, 4096, 256]] as const) {
          const x = rnd([M, K], 31) as tf.Tensor2D, w = rnd([N, K], 32), b = rnd([N], 33);
          for (const bias of [b, undefined]) {
            const want = tf.tidy(() => (bias ? tf.add(tf.matMul(x, w, false, true), bias) : tf.matMul(x, w, false, true)));
            const got = linearFused(x, w, bias)!;
            expect(got.shape).to.deep.equal([M, N]);
            // a dot product of K terms in another order: float32 rounding of values about sqrt(K) in size
            expectClose(got, want, { atol: 1e-6 * K, rtol: 1e-5, label: `${isa} [${M},${K}]x[${N},${K}]${bias ? ' + bias' : ''}` });
            tf.dispose([want, got]);
          }
          tf.dispose([x, w, b]);
        }
      });
      const many = rnd([DECODE_ROWS + 1, 8], 34) as tf.Tensor2D, w = rnd([4, 8], 35), w7 = rnd([4, 7], 36), b3 = rnd([3], 37);
      expect(linearFused(many, w, undefined), 'a prefill\'s rows go to MatMul').to.equal(undefined);
      const one = tf.slice(many, [0, 0], [1, 8]);
      expect(() => linearFused(one, w7, undefined)).to.throw(/Glm46vLinear: x \[M, K\], weight \[N, K\] and bias \[N\] expected/);
      expect(() => linearFused(one, w, b3)).to.throw(/Glm46vLinear: x \[M, K\], weight \[N, K\] and bias \[N\] expected/);
      tf.dispose([many, w, w7, b3, one]);
    });

    it('Glm46vDecodeAttention: the tfjs ops\' values over the cached positions, with and without a mask', () => onEachIsa((isa) => {
      const C = 256, length = 203; // off the 4-key tiles and the 16-lane width
      // [B, H, Hkv, L, Dh]: 4 x 4 tiles where Dh is a multiple of 16 (with rows and keys left over), dot products
      // where it is not; B * Hkv = 1 splits the kv head's rows between the threads
      for (const [B, H, Hkv, L, Dh] of [[2, 4, 2, 1, 16], [1, 8, 2, 1, 64], [1, 4, 1, 1, 13], [2, 6, 2, 3, 32], [1, 2, 2, DECODE_ROWS, 8]] as const) {
        const q = rnd([B, H, L, Dh], 41) as tf.Tensor4D;
        // the free room past `length` holds zeros, as in lib/kv_cache.ts
        const room = (seed: number) => tf.tidy(() => tf.pad(rnd([B, Hkv, length, Dh], seed), [[0, 0], [0, 0], [0, C - length], [0, 0]])) as tf.Tensor4D;
        const keys = room(42), values = room(43);
        // a padding mask: finfo.min on the first 5 positions of batch row 0, every position of its last query row
        const m = new Float32Array(B * L * length);
        for (let i = 0; i < 5; i++) m[i] = -3.4028234663852886e38;
        m.fill(-3.4028234663852886e38, (L - 1) * length, L * length);
        const mask = tf.tensor4d(m, [B, 1, L, length]);
        for (const mk of [null, mask]) {
          const label = `${isa} [B ${B}, H ${H}, Hkv ${Hkv}, L ${L}, Dh ${Dh}]${mk ? ' masked' : ''}`;
          setFusedOpsOffForTests(true);
          const want = cachedAttention(q, { keys, values, valuesTransposed: false, length }, mk, Dh ** -0.5);
          setFusedOpsOffForTests(false);
          const got = decodeAttentionFused(q, keys, values, length, mk, Dh ** -0.5)!;
          expect(got.shape, label).to.deep.equal([B, L, H, Dh]);
          expectClose(got, want, { atol: 1e-6, rtol: 1e-5, label });
          tf.dispose([want, got]);
        }
        tf.dispose([q, keys, values, mask]);
      }
      const q = rnd([1, 2, 1, 8], 44) as tf.Tensor4D, kv = rnd([1, 1, 16, 8], 45) as tf.Tensor4D;
      const refused = /Glm46vDecodeAttention: q \[B, H, L, Dh\], keys and values \[B, Hkv, C, Dh\]/;
      expect(() => decodeAttentionFused(q, kv, kv, 17, null, 0.5), 'length past the cache').to.throw(refused);
      const wrongMask = tf.zeros([1, 1, 1, 9]) as tf.Tensor4D;
      expect(() => decodeAttentionFused(q, kv, kv, 10, wrongMask, 0.5), 'a mask of another length').to.throw(refused);
      tf.dispose([q, kv, wrongMask]);
    }));

    const bits = (t: tf.Tensor) => new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
    const firstDiff = (a: Uint32Array, b: Uint32Array) => a.findIndex((x, i) => x !== b[i]);

    it('Glm46vQkvHeads: the text attention\'s q, k, v heads first, q and k with applyRotation\'s bits', () => onEachIsa((isa) => {
      // [B, L, Hq, Hk, Dh, R]: one token and a prompt; R off and on the 16-lane chunks, all of Dh or part
      for (const [B, L, Hq, Hk, Dh, R] of [[1, 1, 4, 2, 8, 4], [2, 1, 16, 4, 64, 32], [2, 5, 4, 2, 64, 32], [1, 3, 2, 2, 6, 6]] as const) {
        const q = rnd([B * L, Hq * Dh], 51) as tf.Tensor2D, k = rnd([B * L, Hk * Dh], 52) as tf.Tensor2D, v = rnd([B * L, Hk * Dh], 53) as tf.Tensor2D;
        // the model's tables: M-RoPE angles of some positions (sections summing to R/2), padded to Dh
        const pos = tf.tensor3d(Array.from({ length: 3 * B * L }, (_, i) => 100 * (i % (B * L)) + 37 * Math.floor(i / (B * L))), [3, B, L], 'int32');
        const section = [R / 2 - Math.floor(R / 4), Math.floor(R / 4), 0];
        const [c3, s3] = mropeCosSin(pos, tf.tensor1d(Array.from({ length: R / 2 }, (_, j) => 10000 ** (-2 * j / R))), section);
        const [cos, sin] = rotaryTables(c3, s3, Dh);
        // the tfjs path: rotate in the projection layout, then heads first
        const want = tf.tidy(() => [[q, Hq, true], [k, Hk, true], [v, Hk, false]].map(([x, n, rotate]) => {
          const h = tf.reshape(x as tf.Tensor, [B, L, n as number, Dh]);
          return tf.transpose(rotate ? applyRotation(h, cos, sin, interleavedRotation(Dh, R)) : h, [0, 2, 1, 3]);
        }));
        const got = qkvHeadsFused(q, k, v, cos, sin, R)!;
        for (const i of [0, 1, 2]) {
          expect(got[i]!.shape).to.deep.equal(want[i]!.shape);
          const at = firstDiff(bits(got[i]!), bits(want[i]!));
          expect(at, `${isa} [B ${B}, L ${L}, Dh ${Dh}, R ${R}] ${'qkv'[i]}: first differing element ${at}`).to.equal(-1);
        }
        tf.dispose([q, k, v, pos, c3, s3, cos, sin, ...want, ...got]);
      }
    }));

    it('Glm46vVisionHeads: the vision attention\'s q * scale, k, v heads first with the tfjs path\'s bits', () => onEachIsa((isa) => {
      for (const [N, H, Dh] of [[7, 2, 8], [20, 3, 64], [5, 2, 6]] as const) {
        const qkv = rnd([N, 3 * H * Dh], 54) as tf.Tensor2D;
        const angles = tf.mul(rnd([N, Dh], 55), 10);
        const [cos, sin] = [tf.cos(angles), tf.sin(angles)] as tf.Tensor2D[];
        const scale = Dh ** -0.5;
        const want = tf.tidy(() => {
          const [q, k, v] = tf.split(qkv, 3, -1).map((t) => tf.reshape(t, [N, H, Dh]) as tf.Tensor3D);
          const first = (x: tf.Tensor) => tf.transpose(x, [1, 0, 2]);
          return [tf.mul(first(applyRotaryVision(q!, cos!, sin!)), scale), first(applyRotaryVision(k!, cos!, sin!)), first(v!)];
        });
        const got = visionHeadsFused(qkv, cos!, sin!, H, scale)!;
        for (const i of [0, 1, 2]) {
          expect(got[i]!.shape).to.deep.equal([H, N, Dh]);
          const at = firstDiff(bits(got[i]!), bits(want[i]!));
          expect(at, `${isa} [N ${N}, H ${H}, Dh ${Dh}] ${'qkv'[i]}: first differing element ${at}`).to.equal(-1);
        }
        tf.dispose([qkv, angles, cos!, sin!, ...want, ...got]);
      }
    }));

    it('Glm46vWritePositions: InplaceUpdate\'s buffer; positions past the buffer are refused', () => {
      const x = rnd([2, 3, 2, 5], 61) as tf.Tensor4D;
      const [a, b] = [tf.zeros([2, 3, 8, 5]), tf.zeros([2, 3, 8, 5])] as tf.Tensor4D[];
      setFusedOpsOffForTests(true);
      writePositions(a!, x, 6); // InplaceUpdate
      setFusedOpsOffForTests(false);
      expect(writePositionsFused(b!, x, 6)).to.equal(true);
      expect(firstDiff(bits(b!), bits(a!))).to.equal(-1);
      expect(tf.sum(tf.abs(a!)).dataSync()[0], 'something was written').to.be.greaterThan(0);
      expect(() => writePositionsFused(b!, x, 7)).to.throw(/Glm46vWritePositions: positions at..at\+L-1 must lie in the buffer/);
      tf.dispose([x, a!, b!]);
    });

    it('Glm46vSoftmax: softmax(x + mask) of the tfjs ops written over x, the mask broadcast as the attention gives it', () => onEachIsa((isa) => {
      const MIN = -3.4028234663852886e38;
      // [x shape, mask shape or null]: S off the 16-lane width, a padding mask per batch row, one row for all
      for (const [xs, ms] of [[[2, 3, 5, 37], [2, 1, 5, 37]], [[4, 6, 40], [1, 1, 40]], [[3, 64], null], [[2, 2, 3, 16], [1, 1, 3, 16]]] as const) {
        const x = tf.mul(rnd([...xs], 71), 4);
        const mask = ms && tf.tidy(() => tf.where(tf.greater(rnd([...ms], 72), 0.8), tf.fill([...ms], MIN), tf.zeros([...ms])));
        const want = tf.tidy(() => tf.softmax(mask ? tf.add(x, mask) : x));
        const got = tf.clone(x);
        expect(softmaxInPlace(got, mask)).to.equal(true);
        expect(got.shape).to.deep.equal(xs);
        expectClose(got, want, { atol: 1e-7, rtol: 1e-5, label: `${isa} softmax ${JSON.stringify(xs)} + ${JSON.stringify(ms)}` });
        tf.dispose([x, want, got, ...(mask ? [mask] : [])]);
      }
      // a row with every key masked averages them all, as HF's does
      const even = rnd([1, 20], 73), all = tf.fill([1, 20], MIN), uniform = tf.fill([1, 20], 0.05);
      softmaxInPlace(even, all);
      expectClose(even, uniform, { atol: 1e-7, label: 'every key masked' });
      const [two, three] = [tf.zeros([2, 20]), tf.zeros([3, 20])];
      expect(() => softmaxInPlace(two, three)).to.throw(/Glm46vSoftmax: x \[\.\.\., S\] and a mask/);
      tf.dispose([all, uniform, even, two, three]);
    }));
  });
}
