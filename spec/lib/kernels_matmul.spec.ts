import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { installKernelOverrides } from '../../lib/kernels';
import { wasmBatchMatMulKernel, wasmFusedMatMulKernel, wasmMatMulFallbacks } from '../../lib/kernels/wasm_matmul';
import { expectClose } from '../helpers/expect_close';
import { onBackend, seededTensor } from '../helpers/on_backend';

interface Form {
  name: string;
  a: number[];
  b: number[];
  tA?: boolean;
  tB?: boolean;
  /** The cpu kernel indexes batches modulo their size, wrong for two-way and middle broadcasts: the reference
   * then multiplies operands broadcast to this batch shape first. */
  refBatch?: number[];
  /** tfjs's BatchMatMul gradient does not reduce broadcast batch dims on any backend (tfjs#8721): forward only. */
  noGrad?: boolean;
  fused?: { activation: tf.fused.Activation; bias?: boolean; prelu?: boolean };
}

const FORMS: Form[] = [
  { name: '2-D', a: [5, 7], b: [7, 6] },
  { name: 'transposeA', a: [7, 5], b: [7, 6], tA: true },
  { name: 'transposeB, B small (Bᵀ materialised)', a: [5, 7], b: [6, 7], tB: true },
  { name: 'transposeB, B large (as (B·Aᵀ)ᵀ)', a: [3, 16], b: [32, 16], tB: true },
  { name: 'both transposed', a: [7, 5], b: [6, 7], tA: true, tB: true },
  { name: 'both transposed, B large', a: [16, 3], b: [32, 16], tA: true, tB: true },
  { name: 'batched 3-D', a: [3, 5, 7], b: [3, 7, 6] },
  { name: 'batched 3-D, few rows (as (Bᵀ·Aᵀ)ᵀ)', a: [4, 1, 40], b: [4, 40, 16] },
  { name: 'batched 3-D, more rows than FEW_ROWS', a: [3, 12, 7], b: [3, 7, 6] },
  { name: 'batched 3-D, both transposed', a: [3, 7, 5], b: [3, 6, 7], tA: true, tB: true },
  { name: 'batched 4-D', a: [2, 3, 5, 7], b: [2, 3, 7, 6] },
  { name: 'attention QKᵀ [B,H,L,Dh]x[B,H,L,Dh]ᵀ', a: [2, 3, 8, 4], b: [2, 3, 8, 4], tB: true },
  { name: 'attention [B,H,L,Dh]x[B,H,Dh,L]', a: [2, 3, 8, 4], b: [2, 3, 4, 8] },
  { name: 'attention AV [B,H,L,L]x[B,H,L,Dh]', a: [2, 3, 8, 8], b: [2, 3, 8, 4] },
  { name: 'x@W, batch folded into rows', a: [3, 5, 7], b: [7, 6], noGrad: true },
  { name: 'x@W with B batch 1', a: [3, 5, 7], b: [1, 7, 6], noGrad: true },
  { name: 'x@W, transposeA, folded (as (B·Aᵀ)ᵀ)', a: [2, 16, 3], b: [32, 16], tA: true, tB: true, noGrad: true },
  { name: 'x@Wᵀ, folded (as (B·Aᵀ)ᵀ)', a: [2, 3, 16], b: [32, 16], tB: true, noGrad: true },
  { name: 'broadcast batch, B a suffix', a: [2, 3, 5, 7], b: [3, 7, 6], noGrad: true },
  { name: 'broadcast batch, A shared', a: [5, 7], b: [3, 7, 6], noGrad: true },
  { name: 'broadcast batch, two-way', a: [2, 1, 4, 5], b: [1, 3, 5, 6], refBatch: [2, 3], noGrad: true },
  { name: 'broadcast batch, middle', a: [2, 3, 4, 5], b: [2, 1, 5, 6], refBatch: [2, 3], noGrad: true },
  { name: 'fused 2-D, bias + relu', a: [5, 7], b: [7, 6], fused: { activation: 'relu', bias: true } },
  { name: 'fused batched transposeB, bias', a: [3, 5, 7], b: [3, 6, 7], tB: true, fused: { activation: 'linear', bias: true } },
  { name: 'fused transposeA, bias + relu', a: [7, 5], b: [7, 6], tA: true, fused: { activation: 'relu', bias: true } },
  ...(['relu6', 'leakyrelu', 'sigmoid', 'elu', 'prelu'] as const).map((activation): Form => ({
    name: `fused batched, bias + ${activation}`, a: [3, 5, 7], b: [3, 7, 6], noGrad: true,
    fused: { activation, bias: true, prelu: activation === 'prelu' },
  })),
];

/** Forward output, then (unless noGrad) the gradients of every input for a fixed upstream dy, as host arrays. */
function compute(f: Form, reference: boolean): Float32Array[] {
  return tf.tidy(() => {
    const N = f.tB ? f.b[f.b.length - 2]! : f.b[f.b.length - 1]!;
    let a = seededTensor(f.a, 1), b = seededTensor(f.b, 2);
    if (reference && f.refBatch) {
      a = tf.broadcastTo(a, [...f.refBatch, ...f.a.slice(-2)]);
      b = tf.broadcastTo(b, [...f.refBatch, ...f.b.slice(-2)]);
    }
    const extras = [f.fused?.bias ? seededTensor([N], 4) : undefined, f.fused?.prelu ? seededTensor([N], 5) : undefined];
    const inputs = [a, b, ...extras.filter((t): t is tf.Tensor => t !== undefined)];
    const fn = (...xs: tf.Tensor[]): tf.Tensor => {
      if (!f.fused) return tf.matMul(xs[0]!, xs[1]!, f.tA, f.tB);
      const bias = f.fused.bias ? xs[2] : undefined;
      const prelu = f.fused.prelu ? xs[f.fused.bias ? 3 : 2] : undefined;
      return tf.fused.matMul({
        a: xs[0]!, b: xs[1]!, transposeA: f.tA, transposeB: f.tB, bias, activation: f.fused.activation,
        preluActivationWeights: prelu, leakyreluAlpha: 0.2,
      });
    };
    const y = fn(...inputs);
    const out = [y.dataSync() as Float32Array];
    if (!f.noGrad) out.push(...tf.grads(fn)(inputs, seededTensor(y.shape, 3)).map((g) => g.dataSync() as Float32Array));
    return out;
  });
}

describe('wasm matMul override (lib/kernels/wasm_matmul.ts) against the cpu backend', () => {
  let prev: string;
  const expected = new Map<string, Float32Array[]>();

  before(async () => {
    prev = tf.getBackend();
    expect(await tf.setBackend('wasm')).to.equal(true);
    installKernelOverrides('wasm');
    await onBackend('cpu', () => {
      for (const f of FORMS) expected.set(f.name, compute(f, true));
    });
  });
  after(async () => {
    await tf.setBackend(prev);
  });

  it('is the kernel registered for wasm, and only for wasm', () => {
    expect(tf.getKernel('BatchMatMul', 'wasm').kernelFunc).to.equal(wasmBatchMatMulKernel);
    expect(tf.getKernel('_FusedMatMul', 'wasm').kernelFunc).to.equal(wasmFusedMatMulKernel);
    for (const backend of ['cpu', 'webgl', 'webgpu', 'tensorflow']) {
      for (const k of tf.getKernelsForBackend(backend)) {
        expect([wasmBatchMatMulKernel, wasmFusedMatMulKernel], `${k.kernelName} on ${backend}`).not.to.include(k.kernelFunc);
      }
    }
  });

  for (const f of FORMS) {
    it(`${f.name}: ${f.tA ? `[${f.a}]ᵀ` : `[${f.a}]`} x ${f.tB ? `[${f.b}]ᵀ` : `[${f.b}]`} equals cpu${f.noGrad ? '' : ', gradients too'}`, () => {
      const before = wasmMatMulFallbacks.count;
      const ours = compute(f, false);
      const ref = expected.get(f.name)!;
      expect(ours.length).to.equal(ref.length);
      ours.forEach((x, i) => expectClose(x, ref[i]!, { atol: 1e-5, rtol: 1e-5, label: `${f.name} ${i === 0 ? 'forward' : `grad ${i - 1}`}` }));
      expect(wasmMatMulFallbacks.count - before, 'calls answered by the stock kernel').to.equal(0);
    });
  }

  it('leaks no tensors and no wasm data ids across repeated calls', () => {
    const backend = tf.backend() as BackendWasm;
    const forms = FORMS.filter((f) => /attention QK|B large|folded|two-way|fused batched transposeB/.test(f.name));
    expect(forms.length).to.equal(8);
    for (const f of forms) compute(f, false);
    const tensors = tf.memory().numTensors, ids = backend.numDataIds();
    for (let i = 0; i < 3; i++) for (const f of forms) compute(f, false);
    expect(tf.memory().numTensors, 'numTensors').to.equal(tensors);
    expect(backend.numDataIds(), 'numDataIds').to.equal(ids);
  });

  it('does not reuse a weight packing for the same data reshaped to other dims (stock wasm does: diff ~6)', () => {
    const [viaReshape, viaCopy] = tf.tidy(() => {
      const w = seededTensor([8, 4], 1), x = seededTensor([3, 8], 2), y = seededTensor([3, 4], 3);
      tf.matMul(x, w); // packs w as [K=8, N=4]
      const w2 = tf.reshape(w, [4, 8]); // same data id, read as [K=4, N=8]
      return [tf.matMul(y, w2).dataSync(), tf.matMul(y, tf.tensor(w2.dataSync(), [4, 8])).dataSync()];
    });
    expectClose(viaReshape, viaCopy, { atol: 0, label: 'y @ reshape(w)' });
  });

  it('leaves non-float32 operands to the stock kernel and its error', () => {
    const a = tf.ones([2, 2], 'int32'), b = tf.ones([2, 2], 'int32');
    expect(() => tf.matMul(a, b)).to.throw(/not yet supported/);
    tf.dispose([a, b]);
  });
});
