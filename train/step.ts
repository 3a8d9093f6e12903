// One optimizer step with gradient accumulation, as transformers' Trainer.training_step for a model whose loss takes
// no num_items_in_batch (GLM-V): each micro-batch's mean loss / G is backpropagated and the gradients summed, then
// clip_grad_norm_, then the optimizer. Nothing is read back to the host: the caller reads the loss once per step.
import * as tf from '@tensorflow/tfjs';
import type { CausalLm, CausalLmInputs } from '../generation/model';
import type { AdamW } from './adamw';
import { variableGradsFreeing } from './backward';
import { clipGradNorm } from './clip';

export interface StepOutput {
  /** mean over the micro-batches of their mean token loss (the Trainer's logged loss) */
  loss: tf.Scalar;
  /** global gradient norm before clipping */
  gradNorm: tf.Scalar;
}

/**
 * Gradients of the loss of one micro-batch, scaled by `scale`, keyed by checkpoint key. The backward pass frees each
 * node's gradients and saved activations once past it (./backward.ts).
 */
export function microBatchGrads(
  model: CausalLm,
  batch: CausalLmInputs,
  trainable: Map<string, tf.Variable>,
  scale: number,
): { loss: tf.Scalar; grads: Map<string, tf.Tensor> } {
  if (!batch.labels) throw new Error('a training batch needs labels');
  const keyOf = new Map([...trainable].map(([k, v]) => [v.name, k]));
  const { value, grads } = variableGradsFreeing(() => {
    const loss = model.forward(batch).loss!;
    return scale === 1 ? loss : tf.mul(loss, tf.scalar(scale));
  }, [...trainable.values()]);
  return { loss: value, grads: new Map(Object.entries(grads).map(([name, g]) => [keyOf.get(name)!, g])) };
}

/**
 * Accumulates the gradients of `batches` (one optimizer step's micro-batches), clips them to `maxGradNorm`
 * (Infinity: no clipping) and applies `optimizer` at its current lr. `beforeMicroBatch(i)` runs before each
 * forward (LoRA dropout seeds). Every intermediate tensor is disposed; the returned two scalars are the caller's.
 */
export function trainStep(
  model: CausalLm,
  batches: CausalLmInputs[],
  trainable: Map<string, tf.Variable>,
  optimizer: AdamW,
  opts: { maxGradNorm?: number; beforeMicroBatch?: (i: number) => void } = {},
): StepOutput {
  if (batches.length === 0) throw new Error('trainStep: no micro-batches');
  const G = batches.length;
  let sum: Map<string, tf.Tensor> | undefined;
  let lossSum: tf.Scalar | undefined;
  batches.forEach((batch, i) => {
    opts.beforeMicroBatch?.(i);
    const { loss, grads } = microBatchGrads(model, batch, trainable, 1 / G);
    if (!sum) sum = grads;
    else {
      for (const [k, g] of grads) {
        const prev = sum.get(k);
        sum.set(k, prev ? tf.add(prev, g) : g);
        if (prev) tf.dispose([prev, g]);
      }
    }
    const prevLoss = lossSum;
    lossSum = prevLoss ? (tf.add(prevLoss, loss) as tf.Scalar) : loss;
    if (prevLoss) tf.dispose([prevLoss, loss]);
  });
  const { grads, totalNorm } = clipGradNorm(sum!, opts.maxGradNorm ?? Infinity);
  optimizer.step(grads);
  tf.dispose([...sum!.values(), ...grads.values()]);
  return { loss: lossSum!, gradNorm: totalNorm }; // already the mean: each term was scaled by 1 / G
}
