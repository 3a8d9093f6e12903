// Token sampling on host logits, after mlx-lm's make_sampler and transformers' logits processors/warpers, in
// transformers' order: repetition penalty, temperature, top-k, top-p, then a seeded draw (or argmax).
import { splitmix32 } from '../lib/rng';

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** transformers' RepetitionPenaltyLogitsProcessor: a seen token's logit is divided by p if positive, times p if negative. */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): Float32Array {
  if (penalty === 1) return logits;
  const out = logits.slice();
  for (const t of new Set(seen)) out[t] = out[t]! > 0 ? out[t]! / penalty : out[t]! * penalty;
  return out;
}

/** Keeps the k largest logits (ties at the k-th value kept, as torch's `< kth value` test), the rest -Infinity. */
export function applyTopK(logits: Float32Array, k: number): Float32Array {
  if (k <= 0 || k >= logits.length) return logits;
  const kth = Float32Array.from(logits).sort().reverse()[k - 1]!;
  return logits.map((v) => (v < kth ? -Infinity : v));
}

/**
 * Nucleus filtering as transformers' TopPLogitsWarper: sort ascending, drop the tokens whose cumulative
 * probability is <= 1 - p, always keeping the most likely one.
 */
export function applyTopP(logits: Float32Array, p: number): Float32Array {
  if (p >= 1) return logits;
  const probs = softmax(logits);
  const order = Array.from(logits.keys()).sort((a, b) => probs[a]! - probs[b]! || a - b);
  const out = logits.slice();
  let cum = 0;
  for (let i = 0; i < order.length - 1; i++) {
    cum += probs[order[i]!]!;
    if (cum <= 1 - p) out[order[i]!] = -Infinity;
    else break;
  }
  return out;
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]!);
  const out = new Float64Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += out[i] = Math.exp(logits[i]! - m);
  for (let i = 0; i < out.length; i++) out[i]! /= s;
  return out;
}

export interface SamplerOptions {
  /** 0 (default) = greedy argmax */
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed?: number;
}

/** (logits of one row, tokens generated or seen so far in that row) -> next token id */
export type Sampler = (logits: Float32Array, seen: number[]) => number;

export function makeSampler(opts: SamplerOptions = {}): Sampler {
  const temperature = opts.temperature ?? 0;
  const rng = splitmix32(opts.seed ?? 0);
  return (logits, seen) => {
    let x = applyRepetitionPenalty(logits, seen, opts.repetitionPenalty ?? 1);
    if (temperature <= 0) return argmax(x);
    x = x.map((v) => v / temperature);
    if (opts.topK) x = applyTopK(x, opts.topK);
    if (opts.topP !== undefined) x = applyTopP(x, opts.topP);
    const probs = softmax(x);
    let r = rng(), last = 0;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i]! > 0) last = i;
      r -= probs[i]!;
      if (r < 0) return i;
    }
    return last;
  };
}
