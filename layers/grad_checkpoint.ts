// Activation checkpointing as torch.utils.checkpoint (what HF's gradient_checkpointing_enable() wraps each decoder
// layer in): the block's forward keeps none of its activations, and the backward pass runs it again to get them.
// tfjs has no built-in for it; this is a customGrad whose gradient runs a nested engine.gradients (tfjs_notes.md §6).
import * as tf from '@tensorflow/tfjs';

/** The engine internals the nested backward pass needs (tfjs-core 4.22 Engine / EngineState). */
interface EngineInternals {
  state: { gradientDepth: number; activeTape: Array<{ saved?: tf.Tensor[] }> | null };
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor, allowNoGradients?: boolean): { value: tf.Tensor; grads: Array<tf.Tensor | undefined> };
}

/**
 * fn(...inputs, ...constants) with its activations recomputed in the backward pass instead of kept.
 * `inputs` get gradients; `constants` (rotary tables, masks) are kept for the recomputation and get zero gradients;
 * `params` are the variables fn reads (by closure) whose gradients are wanted: pass only the trainable ones, since
 * every one passed gets its gradient computed. fn must be deterministic (no dropout without a fixed seed).
 * Costs one more forward of the block in the backward pass; keeps only inputs and constants between the two.
 */
export function checkpoint(
  fn: (...xs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  constants: tf.Tensor[],
  params: tf.Variable[],
): tf.Tensor {
  const nIn = inputs.length, nConst = constants.length;
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xs = args.slice(0, nIn + nConst) as tf.Tensor[];
    save(xs);
    return {
      value: fn(...xs), // a customGrad forward runs with the tape off: nothing of the block is recorded
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => recompute(fn, saved, nIn, params, dy),
    };
  });
  return f(...inputs, ...constants, ...params);
}

function recompute(fn: (...xs: tf.Tensor[]) => tf.Tensor, saved: tf.Tensor[], nIn: number, params: tf.Variable[], dy: tf.Tensor): tf.Tensor[] {
  const engine = tf.engine() as unknown as EngineInternals;
  const tape = engine.state.activeTape;
  const start = tape?.length ?? 0;
  // Inside the outer backward pass gradientDepth is 0, and a nested gradients() would start a fresh tape and, when
  // done, drop the engine's tape reference (the outer pass then fails): one level deeper it records onto the outer
  // tape instead, whose nodes we remove again below, freeing what they saved for this block.
  engine.state.gradientDepth++;
  try {
    const xs = [...saved.slice(0, nIn), ...params];
    const { value, grads } = engine.gradients(() => fn(...saved), xs, dy, true);
    value.dispose();
    const out = grads.map((g, i) => g ?? tf.zerosLike(xs[i]!));
    const consts = saved.slice(nIn).map((c) => tf.zerosLike(c));
    return [...out.slice(0, nIn), ...consts, ...out.slice(nIn)];
  } finally {
    engine.state.gradientDepth--;
    if (tape) {
      for (const node of tape.splice(start)) for (const t of node.saved ?? []) t.dispose();
    }
  }
}

/**
 * A layer call as transformers' GradientCheckpointingLayer makes it: `run(x, ...constants)` plainly, or, while
 * `accepts` is set, checkpointed, with gradients for the layer's variables that `accepts` takes.
 */
export function callLayer<T extends tf.Tensor>(
  layer: { namedParameters(): Map<string, tf.Variable> },
  accepts: ((v: tf.Variable) => boolean) | undefined,
  run: (x: T, ...constants: tf.Tensor[]) => T,
  x: T,
  constants: tf.Tensor[],
): T {
  if (!accepts) return run(x, ...constants);
  return checkpoint((h, ...c) => run(h as T, ...c), [x], constants, [...layer.namedParameters().values()].filter(accepts)) as T;
}
