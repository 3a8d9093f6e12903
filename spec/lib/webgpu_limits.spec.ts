// lib/device_limits.ts: on WebGPU a tensor is one buffer bound whole, so a weight over the device's binding limit is
// read in row chunks (Linear, Embedding: exact, since each output element is computed as before) and what no split
// can fix is refused by name before loading; a kernel that would bind a too-large tensor is refused with one line
// instead of killing the process. A small cap on the limit lets tiny weights exercise all of it. Under
// GLM46V_BACKEND=webgpu it runs on the device's real limits (plus the cap); on the other backends on the cpu
// backend, with limits installed for it, since webgpu is the only backend that sets limits of its own.
import * as path from 'path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { DeviceLimitError, WASM_HEAP_BYTES, assertFitsWasmHeap, assertParametersFit, bindingLimit, capBindingSizeForTests, deviceLimits, setDeviceLimits } from '../../lib/device_limits';
import { Embedding } from '../../layers/embedding';
import { Linear } from '../../layers/linear';
import { readJson } from '../../lib/config';
import { parseGlm4vConfig } from '../../models/glm4v/config';
import { Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { FIXTURES } from '../helpers/fixtures';
import { expectClose } from '../helpers/expect_close';
import { seeded } from '../helpers/on_backend';

const ON_WEBGPU = (process.env.GLM46V_BACKEND ?? '').trim() === 'webgpu';
const TINY_A = path.join(FIXTURES, 'models', 'tiny_a');

/** Runs `fn` with a binding limit of `cap` bytes: on webgpu under its own limits, else on cpu with limits made for it. */
async function withCap<T>(cap: number, fn: () => Promise<T>): Promise<T> {
  const prevBackend = tf.getBackend(), prevLimits = deviceLimits();
  if (!ON_WEBGPU) {
    await tf.setBackend('cpu');
    setDeviceLimits({ backend: 'cpu', device: 'the test device', maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 32 });
  }
  capBindingSizeForTests(cap);
  try {
    return await fn();
  } finally {
    capBindingSizeForTests(undefined);
    if (!ON_WEBGPU) {
      setDeviceLimits(prevLimits);
      await tf.setBackend(prevBackend);
    }
  }
}

/** x [M, K] @ w[N, K]^T in float64, the reference. */
function linearRef(x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
    y[m * N + n] = s;
  }
  return y;
}

describe('lib/device_limits (WebGPU binding limits)', () => {
  it('the device asks for the adapter limits on webgpu; other backends have none', () => {
    const l = deviceLimits();
    if (ON_WEBGPU) {
      expect(l?.backend).to.equal('webgpu');
      // lavapipe's adapter allows 128 MiB bindings, above WebGPU's default; a real GPU allows more
      expect(bindingLimit()).to.be.at.least(2 ** 27);
    } else {
      expect(bindingLimit()).to.equal(undefined);
    }
  });

  it('Linear over the limit: one matMul per row chunk, the values of the unsplit matMul and of float64', async () => {
    const [M, K, N] = [3, 8, 50]; // weight 1600 B, cap 1 KiB: chunks of 32 and 18 rows
    const xs = seeded(M * K, 1), ws = seeded(N * K, 2), bs = seeded(N, 3);
    const run = async () => {
      const lin = new Linear(K, N, { bias: true });
      const [w, b, x] = [tf.tensor2d(ws, [N, K]), tf.tensor1d(bs), tf.tensor2d(xs, [M, K])];
      lin.weight.set(w);
      lin.bias!.set(b);
      const y = lin.forward(x);
      const v = await y.data();
      tf.dispose([w, b, x, y]);
      lin.dispose();
      return v;
    };
    const whole = await withCap(1 << 20, run);
    const before = tf.memory().numTensors;
    const split = await withCap(1024, run);
    expect(tf.memory().numTensors).to.equal(before); // chunks released with the weight
    if (ON_WEBGPU) expectClose(split, whole, { atol: 1e-6, label: 'split vs whole' }); // see the model case below
    else expect(Array.from(split)).to.deep.equal(Array.from(whole));
    const ref = linearRef(xs, ws, M, K, N).map((v, i) => v + bs[i % N]!);
    expect(Math.max(...Array.from(split, (v, i) => Math.abs(v - ref[i]!)))).to.be.below(1e-5);
  });

  it('Embedding over the limit: each id takes its row from its chunk, exactly', async () => {
    const [V, D] = [50, 8];
    const ws = seeded(V * D, 4);
    const ids = [[0, 31, 32, 49], [17, 48, 5, 33]];
    const got = await withCap(1024, async () => {
      const emb = new Embedding(V, D);
      const [w, x] = [tf.tensor2d(ws, [V, D]), tf.tensor2d(ids, [2, 4], 'int32')];
      emb.weight.set(w);
      const y = emb.forward(x);
      tf.dispose([w, x]);
      expect(y.shape).to.deep.equal([2, 4, D]);
      const v = await y.data();
      y.dispose();
      emb.dispose();
      return v;
    });
    const want = ids.flat().flatMap((id) => Array.from(ws.subarray(id * D, (id + 1) * D)));
    expect(Array.from(got)).to.deep.equal(want);
  });

  it('a model whose embedding and lm_head are split gives the unsplit logits', async () => {
    // tiny_a with a vocabulary of 1024: embed_tokens and lm_head [1024, 64] are 256 KiB, the largest other weight
    // (the patch embedding) 147 KiB, every activation far less; a 192 KiB cap splits exactly those two
    const json = readJson(path.join(TINY_A, 'config.json')) as { text_config: Record<string, unknown> };
    const config = parseGlm4vConfig({ ...json, text_config: { ...json.text_config, vocab_size: 1024 } });
    const ids = [[1, 5, 9, 200, 383, 517, 1023, 768]];
    const logits = (cap: number) => withCap(cap, async () => {
      const m = new Glm4vForConditionalGeneration(config).initWeights({ seed: 7 });
      assertParametersFit(m.namedParams());
      try {
        const out = m.forward({ inputIds: ids });
        const v = await out.logits.data();
        tf.dispose(out as unknown as tf.TensorContainer);
        return v;
      } finally {
        m.dispose();
      }
    });
    const whole = await logits(1 << 20);
    const before = tf.memory().numTensors;
    const split = await logits(192 << 10);
    expect(tf.memory().numTensors).to.equal(before);
    expect(split.length).to.equal(8 * 1024);
    // cpu: bit for bit. webgpu: tfjs picks its matMul program by output shape, so a chunk may sum in another order
    if (ON_WEBGPU) expectClose(split, whole, { atol: 1e-5, label: 'split vs whole logits' });
    else expect(Array.from(split)).to.deep.equal(Array.from(whole));
  });

  it('refuses by name, before loading, a weight that cannot be split to fit', async () => {
    await withCap(512, async () => {
      const err = (() => {
        try {
          Glm4vForConditionalGeneration.fromPretrained(TINY_A).dispose();
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).to.be.instanceOf(DeviceLimitError);
      const msg = (err as Error).message;
      expect(msg.split('\n')).to.have.length(1);
      // the vision patch embedding (a Conv3d weight) is not split; norms [64] (256 B) fit
      expect(msg).to.match(/cannot load on \w+: model\.visual\.patch_embed\.proj\.weight float32 \[32, 3, 2, 14, 14\] is 147\.0 KiB, over .* of 512 B/);
      expect(msg).to.not.match(/layernorm/);
    });
  });

  it(ON_WEBGPU ? 'a kernel binding a too-large tensor fails with one line, and the device goes on' : 'no kernel guard off webgpu: the same op runs', async () => {
    // 2048 elements: webgpu runs ops on inputs under 1000 elements still on the host on its cpu fallback
    const a = tf.tensor1d(seeded(2048, 5)); // 8 KiB
    try {
      if (ON_WEBGPU) {
        capBindingSizeForTests(4096);
        try {
          expect(() => tf.add(a, a)).to.throw(DeviceLimitError, /^webgpu: \w+'s input 0 float32 \[2048\] is 8\.0 KiB, over .* binding size capped for a test of 4\.0 KiB$/);
        } finally {
          capBindingSizeForTests(undefined);
        }
      }
      const s = tf.sum(tf.add(a, a));
      const want = Array.from(seeded(2048, 5)).reduce((x, y) => x + 2 * y, 0);
      expect(Math.abs((await s.data())[0]! - want)).to.be.below(1e-4);
      s.dispose();
    } finally {
      a.dispose();
    }
  });

  it('wasm: a model whose float32 weights exceed the 4 GiB heap is refused in one line before loading; other backends take it', () => {
    // GLM-4.6V-Flash cut to 2 text layers and 2 vision blocks: 1.92e9 parameters, 7.15 GiB in float32 (shapes only)
    const flash = new Map([['model.language_model.embed_tokens.weight', { shape: [151552, 4096] }], ['lm_head.weight', { shape: [151552, 4096] }],
      ['model.language_model.layers.0.mlp.gate_up_proj.weight', { shape: [27392, 4096] }]]);
    const bytes = 4 * (2 * 151552 * 4096 + 27392 * 4096);
    expect(bytes).to.be.above(WASM_HEAP_BYTES);
    expect(() => assertFitsWasmHeap(flash, 'wasm')).to.throw(DeviceLimitError,
      /^cannot load on wasm: the float32 weights are 5\.04 GiB, over the wasm heap's 4\.00 GiB; use the native backend \(npx glm46v setup, GLM46V_BACKEND=tensorflow\)$/);
    expect(() => assertFitsWasmHeap(flash, 'tensorflow')).to.not.throw();
    flash.delete('lm_head.weight'); // 2.73 GiB: loads
    expect(() => assertFitsWasmHeap(flash, 'wasm')).to.not.throw();
  });
});
