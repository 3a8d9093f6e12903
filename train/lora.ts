// LoRA as a layer swap, after mlx-lm tuner/lora.py (LoRALinear.from_base, fuse), with PEFT's names and scaling:
// y = x W^T + b + (alpha / r) * dropout(x) A^T B^T, A = lora_A.weight [r, in] (uniform +-1/sqrt(in), as mlx-lm and
// PEFT's kaiming_uniform(a=sqrt(5))), B = lora_B.weight [out, r] = 0, so an adapted model starts equal to its base.
// The model files know nothing of this: applyLora swaps Linear children through Module.replaceChild.
import * as tf from '@tensorflow/tfjs';
import { Linear } from '../layers/linear';
import type { Module } from '../lib/module';
import { readAndDispose, type SaveTensor, type SavesOwnTensors } from '../lib/save';

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** dropout on the adapter's input while training (0 = none) */
  dropout?: number;
  /** seed of the A initialisation; layer i uses seed + i */
  seed?: number;
}

/**
 * A Linear (same `weight` / `bias` keys and variables as the layer it replaces) plus `lora_A` and `lora_B`.
 * Checkpoint keys of the base stay as they were; the adapters add `<path>.lora_A.weight` / `<path>.lora_B.weight`.
 */
export class LoRALinear extends Linear implements SavesOwnTensors {
  readonly loraA: Linear;
  readonly loraB: Linear;
  readonly scale: number;
  readonly dropout: number;
  /** dropout is applied only while training, with this seed (set per micro-batch by setLoraTraining) */
  training = false;
  dropoutSeed = '0';

  private constructor(inFeatures: number, outFeatures: number, bias: boolean, readonly rank: number, alpha: number, dropout: number) {
    super(inFeatures, outFeatures, { bias });
    this.loraA = this.register('lora_A', new Linear(inFeatures, rank, { bias: false }));
    this.loraB = this.register('lora_B', new Linear(rank, outFeatures, { bias: false }));
    this.scale = alpha / rank;
    this.dropout = dropout;
  }

  /** Takes over `base`'s variables (shared, not copied) and disposes `base`'s own handles. */
  static fromBase(base: Linear, opts: LoraOptions): LoRALinear {
    const { rank, alpha } = opts;
    if (!Number.isInteger(rank) || rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${rank}`);
    if (!(alpha > 0)) throw new Error(`LoRA alpha must be > 0, got ${alpha}`);
    const dropout = opts.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) throw new Error(`LoRA dropout must be in [0, 1), got ${dropout}`);
    const lora = new LoRALinear(base.inFeatures, base.outFeatures, base.bias !== undefined, rank, alpha, dropout);
    lora.weight.set(base.weight.value);
    if (base.bias) lora.bias!.set(base.bias.value);
    base.dispose();
    const bound = 1 / Math.sqrt(base.inFeatures);
    const a = tf.randomUniform([rank, base.inFeatures], -bound, bound, 'float32', opts.seed ?? 0);
    const b = tf.zeros([base.outFeatures, rank]);
    lora.loraA.weight.set(a);
    lora.loraB.weight.set(b);
    tf.dispose([a, b]);
    return lora;
  }

  override forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const y = super.forward(x);
      const xd = this.training && this.dropout > 0 ? tf.dropout(x, this.dropout, undefined, this.dropoutSeed) : x;
      return tf.add(y, tf.mul(this.loraB.forward(this.loraA.forward(xd)), tf.scalar(this.scale)));
    });
  }

  /** W + (alpha / r) B A: the weight of the equivalent plain Linear [out, in] (a new tensor). */
  mergedWeight(): tf.Tensor2D {
    return tf.tidy(() => tf.add(this.weight.value, tf.mul(tf.matMul(this.loraB.weight.value, this.loraA.weight.value), tf.scalar(this.scale))));
  }

  /** Saved as the plain Linear it computes: the merged weight under the base key, the adapters left out. */
  checkpointTensors(prefix: string, tensors: SaveTensor[]): SaveTensor[] {
    return tensors
      .filter((t) => !t.key.startsWith(`${prefix}.lora_`))
      .map((t) => (t.key === `${prefix}.weight` ? { ...t, read: () => readAndDispose(this.mergedWeight()) } : t));
  }

  /** The plain Linear this layer computes (mlx-lm `fuse`): merged weight, the same bias. This layer is left intact. */
  fuse(): Linear {
    const fused = new Linear(this.inFeatures, this.outFeatures, { bias: this.bias !== undefined });
    const w = this.mergedWeight();
    fused.weight.set(w);
    w.dispose();
    if (this.bias) fused.bias!.set(this.bias.value);
    return fused;
  }
}

export interface ApplyLoraOptions extends LoraOptions {
  /** module-path suffixes, matched on whole dotted segments: 'q_proj' adapts every `*.q_proj` Linear */
  targets: string[];
}

const parentOf = (path: string): [string, string] => {
  const i = path.lastIndexOf('.');
  return i < 0 ? ['', path] : [path.slice(0, i), path.slice(i + 1)];
};

/** Every LoRALinear in `model` with its module path. */
export function loraLayers(model: Module): Map<string, LoRALinear> {
  return new Map([...model.namedModules()].filter((e): e is [string, LoRALinear] => e[1] instanceof LoRALinear));
}

/**
 * Swaps every Linear whose module path ends in one of `targets` for a LoRALinear (PEFT's target_modules rule).
 * Returns the adapted paths. A target that matches no Linear is an error naming it.
 */
export function applyLora(model: Module, opts: ApplyLoraOptions): string[] {
  if (opts.targets.length === 0) throw new Error('applyLora: no targets given');
  const modules = model.namedModules();
  const linears = [...modules].filter(([p, m]) => m instanceof Linear && !(m instanceof LoRALinear) && p !== '');
  const matches = (path: string, t: string) => path === t || path.endsWith(`.${t}`);
  // A tied weight (tie_word_embeddings: lm_head.weight is embed_tokens.weight) cannot take an adapter: merged, the
  // adapted use would differ from the other, and a tied checkpoint stores the matrix once.
  const tiedTo = new Map<string, string>();
  for (const [alias, source] of model.tiedParams()) tiedTo.set(alias, source).set(source, alias);
  for (const t of opts.targets) {
    if (!linears.some(([p]) => matches(p, t))) {
      const names = [...new Set(linears.map(([p]) => p.split('.').pop()))].join(', ');
      throw new Error(`applyLora: target '${t}' matches no Linear layer (the model's Linear names: ${names})`);
    }
    const tied = linears.find(([p]) => matches(p, t) && tiedTo.has(`${p}.weight`));
    if (tied) {
      throw new Error(`applyLora: target '${t}': ${tied[0]}.weight is tied to ${tiedTo.get(`${tied[0]}.weight`)} (tie_word_embeddings), and LoRA on a tied weight is not supported: leave '${t}' out of the targets`);
    }
  }
  const adapted: string[] = [];
  for (const [path, m] of linears) {
    if (!opts.targets.some((t) => matches(path, t))) continue;
    const [parentPath, key] = parentOf(path);
    const lora = LoRALinear.fromBase(m as Linear, { ...opts, seed: (opts.seed ?? 0) + adapted.length });
    modules.get(parentPath)!.replaceChild(key, lora);
    adapted.push(path);
  }
  return adapted;
}

/** The adapter parameters (`*.lora_A.weight`, `*.lora_B.weight`) keyed by checkpoint path: LoRA's trainable set. */
export function loraParameters(model: Module): Map<string, tf.Variable> {
  return new Map([...model.namedParameters()].filter(([k]) => /\.lora_[AB]\.weight$/.test(k)));
}

/** Replaces every LoRALinear by its fused Linear, so the model is a plain one again (keys as in the checkpoint). */
export function mergeLora(model: Module): string[] {
  const layers = loraLayers(model);
  const modules = model.namedModules();
  for (const [path, lora] of layers) {
    const [parentPath, key] = parentOf(path);
    modules.get(parentPath)!.replaceChild(key, lora.fuse());
    lora.dispose();
  }
  return [...layers.keys()];
}

/** Dropout on (with per-layer seeds derived from `seed`) or off in every adapter. */
export function setLoraTraining(model: Module, training: boolean, seed = 0): void {
  let i = 0;
  for (const lora of loraLayers(model).values()) {
    lora.training = training;
    lora.dropoutSeed = `${seed}:${i++}`;
  }
}
