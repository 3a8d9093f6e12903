// Checkpoint-key rules of the glm4v_moe models, one reason per rule. Our module tree keeps one MLP per expert, the
// layout of the published GLM-4.5V / GLM-4.6V checkpoints and of what transformers 5.24's save_pretrained writes for
// glm4v_moe (its conversion mapping splits the fused experts on save). transformers holds the experts fused in memory
// and writes them fused for glm46v (no conversion mapping there), so that layout is read too, and written for glm46v.
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader } from '../../lib/checkpoint';
import type { HostTensor, TensorInfo } from '../../lib/safetensors';
import { isIgnoredKey as isIgnoredDenseKey } from '../glm4v/weights';

/** Glm4vMoePreTrainedModel._keys_to_ignore_on_load_unexpected: the next-token-prediction layer published checkpoints
 * carry after the 46 (GLM-4.5V) or 92 decoder layers, which transformers does not build. Same regexes, same search. */
const MTP_LAYERS = [/model\.layers\.92.*/, /model\.layers\.46.*/];

export function isIgnoredKey(key: string): boolean {
  return isIgnoredDenseKey(key) || MTP_LAYERS.some((r) => r.test(key));
}

/** `<layer>.mlp.experts.gate_up_proj` [E, 2I, H] (rows :I gate, I: up) and `<layer>.mlp.experts.down_proj` [E, H, I]. */
const FUSED = /^(.*\.mlp\.experts)\.(gate_up_proj|down_proj)$/;

interface Part {
  fused: string;
  expert: number;
  /** row offset and count in the fused expert matrix */
  rows: [number, number];
  shape: [number, number];
}

/**
 * A checkpoint reader that shows transformers' fused expert tensors as the per-expert keys of our module tree
 * (`...experts.{e}.gate_proj.weight` [I, H], `up_proj` [I, H], `down_proj` [H, I]); other keys pass through.
 * The fused tensor last read is kept until a key of another one is asked for (experts load in order).
 */
export class ExpertLayoutReader extends CheckpointReader {
  private readonly parts = new Map<string, Part>();
  private last: [string, HostTensor] | undefined;

  constructor(location: string) {
    super(location);
    for (const k of super.keys()) {
      const m = FUSED.exec(k);
      if (!m) continue;
      const [E, a, b] = super.info(k).shape as [number, number, number];
      for (let e = 0; e < E; e++) {
        if (m[2] === 'down_proj') this.parts.set(`${m[1]}.${e}.down_proj.weight`, { fused: k, expert: e, rows: [0, a], shape: [a, b] });
        else {
          this.parts.set(`${m[1]}.${e}.gate_proj.weight`, { fused: k, expert: e, rows: [0, a / 2], shape: [a / 2, b] });
          this.parts.set(`${m[1]}.${e}.up_proj.weight`, { fused: k, expert: e, rows: [a / 2, a / 2], shape: [a / 2, b] });
        }
      }
    }
  }

  /** True when the checkpoint holds transformers' fused expert layout. */
  get fused(): boolean {
    return this.parts.size > 0;
  }

  override keys(): string[] {
    return [...super.keys().filter((k) => !FUSED.test(k)), ...this.parts.keys()];
  }

  override has(key: string): boolean {
    return this.parts.has(key) || (!FUSED.test(key) && super.has(key));
  }

  override info(key: string): TensorInfo {
    const p = this.parts.get(key);
    return p ? { ...super.info(p.fused), shape: [...p.shape] } : super.info(key);
  }

  override read(key: string): HostTensor {
    const p = this.parts.get(key);
    if (!p) return super.read(key);
    if (this.last?.[0] !== p.fused) this.last = [p.fused, super.read(p.fused)];
    const src = this.last[1];
    const [R, C] = [src.shape[1]!, src.shape[2]!];
    const start = (p.expert * R + p.rows[0]) * C;
    return { dtype: src.dtype, shape: [...p.shape], data: src.data.slice(start, start + p.rows[1] * C) };
  }

  override tensor(key: string): tf.Tensor {
    if (!this.parts.has(key)) return super.tensor(key);
    const h = this.read(key);
    return tf.tensor(h.data, h.shape, h.dtype);
  }
}
