// The matMul forms the kernel overrides must match the cpu backend on (spec/lib/kernels_matmul*.spec.ts): every rank,
// transposition, broadcast and fused epilogue the model and tfjs's gradients use, with seeded operands.
import * as tf from '@tensorflow/tfjs';
import { seededTensor } from './on_backend';

export interface Form {
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

export const FORMS: Form[] = [
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
export function compute(f: Form, reference: boolean): Float32Array[] {
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
