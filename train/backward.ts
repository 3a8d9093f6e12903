// tf.variableGrads with a backward pass that frees memory as it goes. tfjs's engine.gradients walks the tape in
// reverse and keeps every node's output gradient and every tensor a node saved for its gradient until the whole pass
// ends (tape.js backpropagateGradients, one tidy). Here, once the engine moves on from a node, that node's output
// gradients (unless passed on as an input's gradient) and its saved tensors are disposed: by then every consumer of
// its outputs has been processed, and nothing else reads what it saved. Same kernels in the same order: the gradients
// are bit-identical to tf.variableGrads; the backward's transient memory stays near one layer's instead of the
// whole model's, which lets a full fine-tune run without activation checkpointing in the 4 GiB wasm heap.
import * as tf from '@tensorflow/tfjs';

/** The engine internals this needs (tfjs-core 4.22 TapeNode / EngineState). */
interface TapeNode {
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}
interface EngineInternals {
  state: { activeTape: TapeNode[] | null };
}

interface Done {
  dys: Array<tf.Tensor | null>;
  dxs: tf.Tensor[];
  saved: tf.Tensor[];
}

function free(done: Done): void {
  for (const d of done.dys) if (d && !d.isDisposed && !done.dxs.includes(d)) d.dispose();
  for (const t of done.saved) if (!t.isDisposed) t.dispose();
}

/**
 * Wraps the gradient of every node of the active tape so that entering a node's gradient frees the node before it
 * in the backward order. Call at the end of the function whose gradients are taken, before the engine filters the
 * tape (it copies the nodes).
 */
function freeAsTheBackwardGoes(tape: TapeNode[]): void {
  let previous: Done | undefined;
  for (const node of tape) {
    const gradient = node.gradient;
    if (!gradient) continue;
    node.gradient = (dys) => {
      if (previous) free(previous);
      const done: Done = { dys, dxs: [], saved: node.saved ?? [] };
      previous = done;
      const named = gradient(dys);
      return Object.fromEntries(Object.entries(named).map(([k, g]) => [k, () => {
        const dx = g();
        done.dxs.push(dx);
        return dx;
      }]));
    };
  }
}

/** tf.variableGrads(f, vars), freeing each node's gradients and saved tensors as soon as the backward pass is past it. */
export function variableGradsFreeing(f: () => tf.Scalar, vars: tf.Variable[]): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const engine = tf.engine() as unknown as EngineInternals;
  return tf.variableGrads(() => {
    const y = f();
    const tape = engine.state.activeTape;
    if (!tape) throw new Error('variableGradsFreeing: no active tape (called inside another gradient function?)');
    freeAsTheBackwardGoes(tape);
    return y;
  }, vars);
}
