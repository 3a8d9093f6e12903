// The package's own TensorFlow ops on the native backend (lib/native/fused_ops.c), each one op where the same
// arithmetic in tfjs ops is a chain of passes that each allocate their result:
// - AdamW's update of one parameter, written into the parameter and both moments in place: the same float32
//   operations in the same order as train/adamw.ts's tfjs path, so the same bits (680-700 ms a step for the benchmark
//   model there, 180 ms here, against torch's 313 ms);
// - RMSNorm's forward at inference (6 ops in one, the sum of squares in double);
// - the text MLP's up * silu(gate) at inference, straight from gate_up_proj's output (SplitV, Sigmoid, Mul, Mul).
import * as tf from '@tensorflow/tfjs';
import { fusedOpsReady } from '../native/load';
import { nodeBackend } from './tf_binding';

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

/** Whether adamwInPlace runs here: the native backend on the CPU, with the package's fused ops registered. */
export function canAdamwInPlace(): boolean {
  return ready();
}

/** x [..., D], weight [D], eps -> x * rsqrt(mean(x², -1) + eps) * weight as one op; undefined where it does not run. */
export function rmsNormFused(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor | undefined {
  if (x.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend(), e = tf.scalar(eps);
  try {
    return be.createOutputTensor(be.binding.executeOp('Glm46vRmsNorm', [], be.getInputTensorIds([x, weight, e]), 1)[0]!);
  } finally {
    e.dispose();
  }
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

/** gate_up [..., 2I] -> up * silu(gate) [..., I], gate the first half of each row, as one op; undefined where it does not run. */
export function siluMulHalvesFused(gateUp: tf.Tensor): tf.Tensor | undefined {
  if (gateUp.dtype !== 'float32' || !inference() || !ready()) return undefined;
  const be = nodeBackend();
  return be.createOutputTensor(be.binding.executeOp('Glm46vSiluMul', [], be.getInputTensorIds([gateUp]), 1)[0]!);
}
