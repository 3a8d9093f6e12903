// The package's own TensorFlow ops on the native backend (lib/native/fused_ops.c), each one op where the same
// arithmetic in tfjs ops is a chain of passes that each allocate their result:
// - AdamW's update of one parameter, written into the parameter and both moments in place: the same float32
//   operations in the same order as train/adamw.ts's tfjs path, so the same bits (680-700 ms a step for the benchmark
//   model there, 180 ms here, against torch's 313 ms);
// - RMSNorm's forward at inference (6 ops in one, the sum of squares in double), and its written-out backward in
//   training (15 in one);
// - the SwiGLU product's backward in training (10 ops in one);
// - the MLPs' up * silu(gate) at inference, straight from the text gate_up_proj's output (SplitV, Sigmoid, Mul, Mul)
//   or from the vision tower's two projections (Sigmoid, Mul, Mul);
// - a Linear's product for the few rows of a decode step at inference, bias included (MatMul, Add), streaming the
//   weight once where TensorFlow's MatMul runs a GEMM with m = 1;
// - a decode step's attention over the preallocated KV cache (Mul, BatchMatMulV2 twice, Add, Softmax, reshapes),
//   over the cached positions only where those ops read the cache's free room too;
// - the attention's softmax(scores + mask) at inference (Add, Softmax), written over the scores;
// - the attention's q, k, v laid out heads first, q and k rotated (text and vision; 9-15 ops), with the same bits;
// - the KV cache's in-place write of a step's keys or values (Reshape twice, a row-index tensor, InplaceUpdate);
// - a checkpoint's bf16 bytes widened into a float32 weight in place (Bitcast, Cast, InplaceUpdate; tf_bf16.ts).
import * as tf from '@tensorflow/tfjs';
import { fusedGemvReady, fusedOpsReady } from '../native/load';
import { nodeBackend, withTransientVector, withVector } from './tf_binding';

/** The scalars of one step, float32 as the tfjs path uploads them. */
export interface AdamWScalars {
  decay: tf.Scalar;
  oneMinusBeta1: tf.Scalar;
  beta2: tf.Scalar;
  oneMinusBeta2: tf.Scalar;
  biasCorrection2Sqrt: tf.Scalar;
  eps: tf.Scalar;
  stepSize: tf.Scalar;
}

let offForTests = false;

/** Turns the fused ops off (specs only: to compare with the tfjs ops they replace); false turns them back on. */
export function setFusedOpsOffForTests(off: boolean): void {
  offForTests = off;
}

const ready = () => !offForTests && tf.getBackend() === 'tensorflow' && fusedOpsReady();

/**
 * Outside every gradient computation: the inference ops stay out of a checkpointed layer's first forward (run
 * inside tf.grads with the tape paused), which must give the bits of the forward that records gradients.
 */
const inference = () => tf.engine().state.gradientDepth === 0;

/** Whether the package's op that widens bf16 checkpoint bytes into a float32 weight in place runs here (lib/kernels/tf_bf16.ts calls it). */
export function canWriteBf16Rows(): boolean {
  return ready();
}

/** Whether adamwInPlace runs here: the native backend on the CPU, with the package's fused ops registered. */
export function canAdamwInPlace(): boolean {
  return ready();
}

/** x [..., D], weight [D], eps -> x * rsqrt(mean(x², -1) + eps) * weight as one op; undefined where it does not run. */
export function rmsNormFused(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor | undefined {
  if (x.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend();
  return be.createOutputTensor(withVector(be, [eps], (e) => be.binding.executeOp('Glm46vRmsNorm', [], [...be.getInputTensorIds([x, weight]), e], 1)[0]!, 'float32'));
}

/**
 * RMSNorm's written-out backward (layers/ops/rms_norm.ts) as one op: x, dy [..., D], weight [D] -> [dx through
 * x * r, dx through square(x), dweight], within float32 rounding of the tfjs ops; undefined where it does not run.
 */
export function rmsNormGradFused(x: tf.Tensor, weight: tf.Tensor, dy: tf.Tensor, eps: number): [tf.Tensor, tf.Tensor, tf.Tensor] | undefined {
  if (x.dtype !== 'float32' || dy.dtype !== 'float32' || !ready()) return undefined;
  const be = nodeBackend();
  const out = withVector(be, [eps], (e) => be.binding.executeOp('Glm46vRmsNormGrad', [], [...be.getInputTensorIds([x, weight, dy]), e], 3), 'float32');
  return out.map((t) => be.createOutputTensor(t)) as [tf.Tensor, tf.Tensor, tf.Tensor];
}

/**
 * The written-out backward of up * silu(gate) (layers/ops/activations.ts) as one op: gate, up, dy -> [dgate, dup],
 * within float32 rounding of the tfjs ops; undefined where it does not run.
 */
export function siluMulGradFused(gate: tf.Tensor, up: tf.Tensor, dy: tf.Tensor): [tf.Tensor, tf.Tensor] | undefined {
  if (gate.dtype !== 'float32' || up.dtype !== 'float32' || dy.dtype !== 'float32' || !ready()) return undefined;
  const be = nodeBackend();
  const out = be.binding.executeOp('Glm46vSiluMulGrad', [], be.getInputTensorIds([gate, up, dy]), 2);
  return out.map((t) => be.createOutputTensor(t)) as [tf.Tensor, tf.Tensor];
}

/**
 * p = p * decay; m = m + (g - m) * (1 - b1); v = v * b2 + (g * (1 - b2)) * g;
 * p = p - stepSize * (m / (sqrt(v) / sqrt(1 - b2^t) + eps)), written into p, m and v (float32, one shape).
 * The caller checks canAdamwInPlace() first; nothing else may hold p's, m's or v's buffers.
 */
export function adamwInPlace(p: tf.Variable, g: tf.Tensor, m: tf.Variable, v: tf.Variable, s: AdamWScalars): void {
  const be = nodeBackend();
  const scalars = [s.decay, s.oneMinusBeta1, s.beta2, s.oneMinusBeta2, s.biasCorrection2Sqrt, s.eps, s.stepSize];
  be.binding.executeOp('Glm46vAdamW', [], be.getInputTensorIds([p, g, m, v, ...scalars]), 0);
}

/** gate, up [..., I] -> up * silu(gate) as one op; undefined where it does not run. */
export function siluMulFused(gate: tf.Tensor, up: tf.Tensor): tf.Tensor | undefined {
  if (gate.dtype !== 'float32' || up.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend();
  return be.createOutputTensor(be.binding.executeOp('Glm46vSiluMulPair', [], be.getInputTensorIds([gate, up]), 1)[0]!);
}

/** gate_up [..., 2I] -> up * silu(gate) [..., I], gate the first half of each row, as one op; undefined where it does not run. */
export function siluMulHalvesFused(gateUp: tf.Tensor): tf.Tensor | undefined {
  if (gateUp.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend();
  return be.createOutputTensor(be.binding.executeOp('Glm46vSiluMul', [], be.getInputTensorIds([gateUp]), 1)[0]!);
}

/** Rows up to which the decode ops run: linearFused's rows of x, decodeAttentionFused's queries per head. */
export const DECODE_ROWS = 8;

/** x [M, K], weight [N, K], bias [N] -> x weightᵀ + bias as one op for M <= DECODE_ROWS; undefined where it does not run. */
export function linearFused(x: tf.Tensor2D, weight: tf.Tensor, bias: tf.Tensor | undefined): tf.Tensor2D | undefined {
  if (x.shape[0] > DECODE_ROWS || x.dtype !== 'float32' || !inference() || !ready() || !fusedGemvReady()) return undefined;
  const be = nodeBackend();
  const ids = be.getInputTensorIds(bias ? [x, weight, bias] : [x, weight]);
  return be.createOutputTensor(be.binding.executeOp(bias ? 'Glm46vLinear' : 'Glm46vLinearNoBias', [], ids, 1)[0]!) as tf.Tensor2D;
}

/**
 * q [B, H, L, Dh], keys and values [B, Hkv, C, Dh] of which the first `length` positions hold tokens, mask [1 or B,
 * 1, L, length] additive or null -> softmax(q * scale kᵀ + mask) v as [B, L, H, Dh], one op for L <= DECODE_ROWS;
 * undefined where it does not run.
 */
export function decodeAttentionFused(q: tf.Tensor4D, keys: tf.Tensor4D, values: tf.Tensor4D, length: number, mask: tf.Tensor4D | null, scale: number): tf.Tensor4D | undefined {
  if (q.shape[2] > DECODE_ROWS || q.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend(), [qkv, m] = [be.getInputTensorIds([q, keys, values]), mask ? be.getInputTensorIds([mask]) : []];
  const out = withTransientVector(be, [scale, length], (p) => be.binding.executeOp(mask ? 'Glm46vDecodeAttentionMasked' : 'Glm46vDecodeAttention', [], [...qkv, p, ...m], 1)[0]!, 'float32');
  return be.createOutputTensor(out) as tf.Tensor4D;
}

/**
 * The text attention's q [B*L, Hq*Dh], k and v [B*L, Hk*Dh] as their projections give them, and the rotary tables
 * cos, sin [B, L, 1, Dh] -> q, k, v as [B, H, L, Dh], q and k rotated as applyRotation with interleavedRotation(Dh,
 * rotaryDim) rotates them (the same bits), as one op; undefined where it does not run.
 */
export function qkvHeadsFused(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, cos: tf.Tensor, sin: tf.Tensor, rotaryDim: number): [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D] | undefined {
  if (q.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend();
  const out = withVector(be, [rotaryDim], (r) => be.binding.executeOp('Glm46vQkvHeads', [], [...be.getInputTensorIds([q, k, v, cos, sin]), r], 3), 'float32');
  return out.map((t) => be.createOutputTensor(t)) as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
}

/**
 * The vision attention's qkv [N, 3*H*Dh] and cos, sin [N, Dh] -> q * scale, k, v as [H, N, Dh], q and k rotated by
 * rotate_half as applyRotaryVision does (the same bits), as one op; undefined where it does not run.
 */
export function visionHeadsFused(qkv: tf.Tensor2D, cos: tf.Tensor2D, sin: tf.Tensor2D, heads: number, scale: number): [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D] | undefined {
  if (qkv.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend();
  const out = withVector(be, [heads, scale], (p) => be.binding.executeOp('Glm46vVisionHeads', [], [...be.getInputTensorIds([qkv, cos, sin]), p], 3), 'float32');
  return out.map((t) => be.createOutputTensor(t)) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
}

/** Writes x [B, H, L, D] into buf [B, H, C, D] at positions at..at+L-1 in place, as one op; false where it does not run. */
export function writePositionsFused(buf: tf.Tensor4D, x: tf.Tensor4D, at: number): boolean {
  if (!ready()) return false;
  const be = nodeBackend(); // a new position every step: not worth caching
  withTransientVector(be, [at], (a) => be.binding.executeOp('Glm46vWritePositions', [], [...be.getInputTensorIds([buf, x]), a], 0), 'float32');
  return true;
}

/**
 * x = softmax(x + mask) along the last axis (mask broadcast to x, or null), written over x in place as one op; false
 * where it does not run. x must be a fresh result that nothing else reads (the attention's scores).
 */
export function softmaxInPlace(x: tf.Tensor, mask: tf.Tensor | null): boolean {
  if (x.dtype !== 'float32' || !inference() || !ready()) return false;
  const be = nodeBackend();
  be.binding.executeOp(mask ? 'Glm46vMaskedSoftmax' : 'Glm46vSoftmax', [], be.getInputTensorIds(mask ? [x, mask] : [x]), 0);
  return true;
}
