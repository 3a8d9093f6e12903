// Generation after gpt-fast's split: prefill once (vision runs only there), then decode one token at a time with
// the KV cache. New tokens sit at max(prompt positions) + 1 + k on all three M-RoPE axes (hf_reference 4.3).
import * as tf from '@tensorflow/tfjs';
import { TextCache } from '../lib/kv_cache';
import { Sampler, SamplerOptions, makeSampler } from './sampling';
import type { CausalLm, CausalLmInputs } from './model';

export interface GenerateOptions extends SamplerOptions {
  maxNewTokens?: number;
  /** stop ids (generation_config.json / config eos_token_id) */
  eosTokenId?: number[];
  /** written after a row has stopped, as transformers does */
  padTokenId?: number;
}

/** What the decode loop carries between steps; returned and passed back, never stored on the model. */
export interface DecodeState {
  cache: TextCache;
  /** the next position of each row (same on the t, h, w axes) */
  nextPositions: number[];
  attentionMask: number[][];
}

/** Last-position logits of each row, read to the host. */
async function lastLogits(logits: tf.Tensor3D): Promise<Float32Array[]> {
  const [B, , V] = logits.shape;
  const data = (await logits.data()) as Float32Array;
  logits.dispose();
  return Array.from({ length: B }, (_, b) => data.slice(b * V, (b + 1) * V));
}

/** Runs the whole prompt (and its images/videos) once and fills the cache. */
export async function prefill(model: CausalLm, inputs: CausalLmInputs): Promise<{ logits: Float32Array[]; state: DecodeState }> {
  const ids = inputs.inputIds as number[][];
  const attentionMask = (inputs.attentionMask as number[][] | undefined) ?? ids.map((r) => r.map(() => 1));
  const cache = new TextCache(model.config.text_config.num_hidden_layers);
  try {
    const out = model.forward({ ...inputs, attentionMask, cache, logitsToKeep: 1 });
    const nextPositions = ids.map((_, b) => {
      let m = -Infinity;
      for (let l = 0; l < ids[b]!.length; l++) if (attentionMask[b]![l]) m = Math.max(m, out.positionIds[0]![b]![l]!, out.positionIds[1]![b]![l]!, out.positionIds[2]![b]![l]!);
      return m + 1;
    });
    return { logits: await lastLogits(out.logits), state: { cache, nextPositions, attentionMask } };
  } catch (e) {
    cache.dispose();
    throw e;
  }
}

/** One token per row through the cached model. */
export async function decodeOne(model: CausalLm, tokens: number[], state: DecodeState): Promise<Float32Array[]> {
  state.attentionMask = state.attentionMask.map((r) => [...r, 1]);
  const p = state.nextPositions.map((x) => [x]);
  const out = model.forward({
    inputIds: tokens.map((t) => [t]),
    attentionMask: state.attentionMask,
    positionIds: [p, p, p],
    cache: state.cache,
    logitsToKeep: 1,
  });
  state.nextPositions = state.nextPositions.map((x) => x + 1);
  return lastLogits(out.logits);
}

/**
 * Keeps the rows `rows` of a decode state (cache rows gathered out, mask and positions with them), freeing the
 * others' memory at once; leading positions that no kept row attends to go too, so a row left alone decodes as if
 * it had run alone.
 */
export function keepRows(state: DecodeState, rows: number[]): void {
  const mask = rows.map((r) => state.attentionMask[r]!);
  const width = mask[0]?.length ?? 0;
  let from = 0;
  while (from < width && mask.every((m) => !m[from])) from++;
  state.cache.keepRows(rows, from);
  state.attentionMask = mask.map((m) => m.slice(from));
  state.nextPositions = rows.map((r) => state.nextPositions[r]!);
}

/**
 * Appends the rows of `other` (a later prefill) to `state`: the shorter of the two is left-padded, zeros in the
 * cache and 0 in the mask, as a left-padded batch would have been. `other`'s cache is consumed.
 */
export function appendRows(state: DecodeState, other: DecodeState): void {
  const [a, b] = [state.cache.offset, other.cache.offset];
  if (a < b) {
    state.cache.padLeft(b - a);
    state.attentionMask = state.attentionMask.map((m) => [...new Array<number>(b - a).fill(0), ...m]);
  } else if (b < a) {
    other.cache.padLeft(a - b);
    other.attentionMask = other.attentionMask.map((m) => [...new Array<number>(a - b).fill(0), ...m]);
  }
  state.cache.appendRows(other.cache);
  state.attentionMask = [...state.attentionMask, ...other.attentionMask];
  state.nextPositions = [...state.nextPositions, ...other.nextPositions];
}

/**
 * Yields the next token of every row at each step (rows that have stopped yield the pad id), like mlx-lm's
 * generate_step. Stops when every row has produced a stop id or after maxNewTokens.
 */
export async function* generateTokens(model: CausalLm, inputs: CausalLmInputs, opts: GenerateOptions = {}, sampler: Sampler = makeSampler(opts)): AsyncGenerator<number[]> {
  const eos = new Set(opts.eosTokenId ?? model.config.eos_token_id);
  const pad = opts.padTokenId ?? model.config.text_config.pad_token_id ?? 0;
  const max = opts.maxNewTokens ?? 256;
  const seen = (inputs.inputIds as number[][]).map((r) => [...r]);
  const done = seen.map(() => false);
  const { logits: first, state } = await prefill(model, inputs);
  let logits = first;
  try {
    for (let step = 0; step < max; step++) {
      const next = logits.map((l, b) => (done[b] ? pad : sampler(l, seen[b]!)));
      next.forEach((t, b) => {
        seen[b]!.push(t);
        if (eos.has(t)) done[b] = true;
      });
      yield next;
      if (done.every(Boolean) || step + 1 === max) break;
      logits = await decodeOne(model, next, state);
    }
  } finally {
    state.cache.dispose();
  }
}

/** Prompt plus generated tokens for every row (left padding kept), as transformers' `generate` returns. */
export async function generate(model: CausalLm, inputs: CausalLmInputs, opts: GenerateOptions = {}): Promise<number[][]> {
  const seqs = (inputs.inputIds as number[][]).map((r) => [...r]);
  for await (const step of generateTokens(model, inputs, opts)) step.forEach((t, b) => seqs[b]!.push(t));
  return seqs;
}
