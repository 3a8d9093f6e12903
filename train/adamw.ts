// AdamW as torch.optim.AdamW (torch/optim/adam.py `_single_tensor_adam` with decoupled_weight_decay=True):
// p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = b2*v + (1-b2)*g*g; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
// tf.train has no AdamW (tfjs_notes.md section 6), so this owns its state: per parameter a step count and the two moments.
import * as tf from '@tensorflow/tfjs';
import { adamwInPlace, canAdamwInPlace } from '../lib/kernels/tf_fused';
import type { HoldsFusedParameters, Module } from '../lib/module';
import { readAllSafetensors, WriteTensor, writeSafetensorsAsync } from '../lib/safetensors';
import { readFloat32 } from '../lib/save';

export interface ParamGroup {
  /** checkpoint keys of the parameters in this group */
  keys: string[];
  weightDecay: number;
  /** this group's learning rate as a fraction of the optimizer's (torch: a group `lr` of lrScale x lr); default 1 */
  lrScale?: number;
}

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /**
   * Sets of keys that torch holds as one parameter (fusedParameterSets): when one of a set has a gradient, the others
   * step with a zero gradient (decay, moments, step count), as torch steps a fused tensor whose unused slices get 0.
   */
  fused?: string[][];
}

const holdsFused = (m: unknown): m is HoldsFusedParameters => typeof (m as Partial<HoldsFusedParameters>).fusedParameters === 'function';

/** The fused sets of `model`'s modules, restricted to the `trainable` keys (LoRA leaves a frozen base out). */
export function fusedParameterSets(model: Module, trainable: Map<string, tf.Variable>): string[][] {
  const sets: string[][] = [];
  for (const [prefix, m] of model.namedModules()) {
    if (!holdsFused(m)) continue;
    for (const set of m.fusedParameters(prefix)) {
      const keys = set.filter((k) => trainable.has(k));
      if (keys.length > 1) sets.push(keys);
    }
  }
  return sets;
}

interface Moments {
  step: number;
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
}

/**
 * Splits parameters into a decayed group and an undecayed one, as transformers' Trainer does: biases and norm
 * weights (every 1-D parameter) skip weight decay unless `decayAll`.
 */
export function paramGroups(params: Map<string, tf.Variable>, weightDecay: number, decayAll = false): ParamGroup[] {
  const decay: string[] = [], noDecay: string[] = [];
  for (const [k, v] of params) (decayAll || v.rank >= 2 ? decay : noDecay).push(k);
  return [{ keys: decay, weightDecay }, { keys: noDecay, weightDecay: 0 }].filter((g) => g.keys.length > 0);
}

/** Splits every group in two: the keys `match` picks get `lrScale`, the others keep theirs (empty groups dropped). */
export function scaleGroups(groups: ParamGroup[], match: (key: string) => boolean, lrScale: number): ParamGroup[] {
  return groups.flatMap((g) => [
    { ...g, keys: g.keys.filter((k) => !match(k)) },
    { ...g, keys: g.keys.filter(match), lrScale },
  ]).filter((g) => g.keys.length > 0);
}

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  private readonly decayOf = new Map<string, number>();
  private readonly lrScaleOf = new Map<string, number>();
  private readonly state = new Map<string, Moments>();
  private readonly fused: string[][];

  constructor(
    private readonly params: Map<string, tf.Variable>,
    groups: ParamGroup[],
    opts: AdamWOptions,
  ) {
    this.lr = opts.lr;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.fused = opts.fused ?? [];
    for (const k of this.fused.flat()) if (!params.has(k)) throw new Error(`AdamW: fused set names '${k}', which is not a trainable parameter`);
    for (const g of groups) {
      for (const k of g.keys) {
        if (!params.has(k)) throw new Error(`AdamW: parameter group names '${k}', which is not a trainable parameter`);
        if (this.decayOf.has(k)) throw new Error(`AdamW: '${k}' is in more than one parameter group`);
        this.decayOf.set(k, g.weightDecay);
        this.lrScaleOf.set(k, g.lrScale ?? 1);
      }
    }
    const ungrouped = [...params.keys()].filter((k) => !this.decayOf.has(k));
    if (ungrouped.length) throw new Error(`AdamW: parameters in no group: ${ungrouped.slice(0, 5).join(', ')}${ungrouped.length > 5 ? ', ...' : ''}`);
  }

  /** The optimizer steps taken by the parameter that has taken the most (torch keeps one count per parameter). */
  get stepCount(): number {
    let n = 0;
    for (const s of this.state.values()) n = Math.max(n, s.step);
    return n;
  }

  /**
   * One update with `grads` keyed by checkpoint key. A parameter without a gradient is skipped entirely (no decay,
   * no moment update), as torch skips a parameter whose .grad is None, unless another of its fused set has one (then
   * its gradient is zero, as in torch's fused tensor). No host sync: every scalar is uploaded.
   */
  step(grads: Map<string, tf.Tensor>): void {
    const [b1, b2] = this.betas;
    // one upload per distinct scalar value per step, shared by every parameter (kept out of the per-parameter tidy)
    const scalars = new Map<number, tf.Scalar>();
    const c = (v: number): tf.Scalar => {
      let t = scalars.get(v);
      if (!t) scalars.set(v, (t = tf.keep(tf.scalar(v))));
      return t;
    };
    const zeros: tf.Tensor[] = [];
    let all = grads;
    for (const set of this.fused) {
      if (!set.some((k) => grads.has(k))) continue;
      if (all === grads) all = new Map(grads);
      for (const k of set) if (!all.has(k)) all.set(k, zeros[zeros.push(tf.zerosLike(this.params.get(k)!)) - 1]!);
    }
    try {
      this.update(all, b1, b2, c);
    } finally {
      tf.dispose([...scalars.values(), ...zeros]);
    }
  }

  private update(grads: Map<string, tf.Tensor>, b1: number, b2: number, c: (v: number) => tf.Scalar): void {
    const inPlace = canAdamwInPlace(); // the native CPU backend: one fused op per parameter, the same arithmetic
    for (const [key, g] of grads) {
      const p = this.params.get(key);
      if (!p) throw new Error(`AdamW: gradient for '${key}', which is not a parameter of this optimizer`);
      if (!tf.util.arraysEqual(g.shape, p.shape)) throw new Error(`AdamW: gradient of '${key}' has shape ${JSON.stringify(g.shape)}, parameter ${JSON.stringify(p.shape)}`);
      const s = this.moments(key, p);
      s.step += 1;
      const wd = this.decayOf.get(key)!;
      const lr = this.lr * this.lrScaleOf.get(key)!;
      // Python floats in torch: the bias corrections are computed in double and enter the kernels as scalars.
      const stepSize = lr / (1 - b1 ** s.step);
      const bc2Sqrt = Math.sqrt(1 - b2 ** s.step);
      if (inPlace && g.dtype === 'float32') {
        adamwInPlace(p, g, s.expAvg, s.expAvgSq, {
          decay: c(1 - lr * wd), oneMinusBeta1: c(1 - b1), beta2: c(b2), oneMinusBeta2: c(1 - b2),
          biasCorrection2Sqrt: c(bc2Sqrt), eps: c(this.eps), stepSize: c(stepSize),
        });
        continue;
      }
      tf.tidy(() => {
        const decayed = wd !== 0 ? tf.mul(p, c(1 - lr * wd)) : p;
        // torch's lerp for weight < 0.5: self + weight * (end - self)
        const m = tf.add(s.expAvg, tf.mul(tf.sub(g, s.expAvg), c(1 - b1)));
        const v = tf.add(tf.mul(s.expAvgSq, c(b2)), tf.mul(tf.mul(g, c(1 - b2)), g));
        const denom = tf.add(tf.div(tf.sqrt(v), c(bc2Sqrt)), c(this.eps));
        p.assign(tf.sub(decayed, tf.mul(c(stepSize), tf.div(m, denom))));
        s.expAvg.assign(m);
        s.expAvgSq.assign(v);
      });
    }
  }

  private moments(key: string, p: tf.Variable): Moments {
    let s = this.state.get(key);
    if (!s) {
      s = { step: 0, expAvg: zerosVariable(p), expAvgSq: zerosVariable(p) };
      this.state.set(key, s);
    }
    return s;
  }

  /** The state as tensors `exp_avg:<key>` / `exp_avg_sq:<key>` (read lazily) and metadata with the step counts. */
  stateEntries(): { tensors: Array<[string, () => Promise<WriteTensor>]>; shapes: Map<string, { dtype: 'F32'; shape: number[] }>; metadata: Record<string, string> } {
    const tensors: Array<[string, () => Promise<WriteTensor>]> = [];
    const shapes = new Map<string, { dtype: 'F32'; shape: number[] }>();
    const steps: Record<string, number> = {};
    for (const [key, s] of this.state) {
      steps[key] = s.step;
      for (const [name, v] of [[`exp_avg:${key}`, s.expAvg], [`exp_avg_sq:${key}`, s.expAvgSq]] as const) {
        tensors.push([name, async () => ({ dtype: 'F32', shape: v.shape, data: await readFloat32(v) })]);
        shapes.set(name, { dtype: 'F32', shape: v.shape });
      }
    }
    return { tensors, shapes, metadata: { format: 'glm46v-adamw', steps: JSON.stringify(steps), betas: JSON.stringify(this.betas), eps: String(this.eps) } };
  }

  /** Writes the state to one safetensors file (atomically, one tensor at a time); no step may run until it settles. */
  async saveState(file: string): Promise<void> {
    const { tensors, shapes, metadata } = this.stateEntries();
    await writeSafetensorsAsync(file, tensors, metadata, shapes);
  }

  /** Replaces the state with the one saved by `saveState`; every saved key must be a parameter of this optimizer. */
  loadState(file: string): void {
    const { tensors, metadata } = readAllSafetensors(file);
    if (metadata.format !== 'glm46v-adamw') throw new Error(`${file}: not an AdamW state file (format ${JSON.stringify(metadata.format)})`);
    const steps = JSON.parse(metadata.steps ?? '{}') as Record<string, number>;
    this.disposeState();
    for (const [key, step] of Object.entries(steps)) {
      const p = this.params.get(key);
      if (!p) throw new Error(`${file}: state for '${key}', which is not a parameter of this optimizer`);
      const read = (name: string) => {
        const h = tensors.get(name);
        if (!h || !tf.util.arraysEqual(h.shape, p.shape)) throw new Error(`${file}: '${name}' is missing or not shaped ${JSON.stringify(p.shape)}`);
        return ownedVariable(tf.tensor(h.data, h.shape, 'float32'));
      };
      this.state.set(key, { step, expAvg: read(`exp_avg:${key}`), expAvgSq: read(`exp_avg_sq:${key}`) });
    }
  }

  private disposeState(): void {
    for (const s of this.state.values()) tf.dispose([s.expAvg, s.expAvgSq]);
    this.state.clear();
  }

  dispose(): void {
    this.disposeState();
  }
}

/** A non-trainable variable over `t`'s data; tf.variable shares and references it, so our handle is dropped. */
function ownedVariable(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t, false);
  t.dispose();
  return v;
}

const zerosVariable = (p: tf.Variable): tf.Variable => ownedVariable(tf.zerosLike(p));
