// Runs the inputs of a reference-tensor file (contracts.md section 1) through a model and compares every tensor
// the model produces: `rope:*`, `out:<module path>`, `logits`, `loss`, `grad:<param>`, `gen:sequences`.
// Tensors are read with `await data()` only, so it runs on backends without synchronous reads (webgpu in Node).
import * as tf from '@tensorflow/tfjs';
import { captureOutputs } from '../lib/capture';
import type { HostTensor } from '../lib/safetensors';
import type { Glm4vForConditionalGeneration, CausalLmInputs } from '../models/glm4v/model';
import { variableGradsFreeing } from '../train/backward';

export interface Comparison {
  name: string;
  shape: number[];
  maxAbs: number;
  maxRel: number;
  ok: boolean;
  /** why a tensor was compared only in part (padding) */
  note?: string;
}

export interface ParityOptions {
  atol?: number;
  rtol?: number;
  /** compare `grad:*` (needs a backward pass); default: when the file holds any */
  grads?: boolean;
  /** greedy generation for `gen:sequences`; injected to keep this module free of the generation loop */
  generate?: (model: Glm4vForConditionalGeneration, inputs: CausalLmInputs, maxNewTokens: number) => Promise<number[][]>;
}

type Ref = Map<string, HostTensor>;

function rows2d(t: HostTensor): number[][] {
  const [B, L] = t.shape as [number, number];
  return Array.from({ length: B }, (_, b) => Array.from(t.data.subarray(b * L, (b + 1) * L)));
}

function rows3d(t: HostTensor): number[][][] {
  const [A, B, L] = t.shape as [number, number, number];
  return Array.from({ length: A }, (_, a) => Array.from({ length: B }, (_, b) => Array.from(t.data.subarray((a * B + b) * L, (a * B + b + 1) * L))));
}

/** The kinds of reference file scripts/parity/ writes; only 'model' holds what `runParity` compares. */
export type ReferenceKind = 'model' | 'rope-index' | 'image-processor' | 'processor' | 'vision-tower' | 'optimizer' | 'unknown';

/** A file's kind and the tensors that show it, in words ("proc:* tensors only"). */
export interface ReferenceKindInfo {
  kind: ReferenceKind;
  evidence: string;
}

/** Tensors that `runParity` compares against a forward pass, generation or backward pass. */
export const isModelOutput = (k: string) => k.startsWith('out:') || k === 'logits' || k === 'loss' || k.startsWith('grad:') || k === 'gen:sequences';

const prefixes = (names: string[]) => [...new Set(names.map((k) => (k.includes(':') ? `${k.slice(0, k.indexOf(':'))}:*` : k)))].sort();

/**
 * Tells a model reference (in:input_ids and model outputs) from the other reference files of contracts.md section 1,
 * from tensor names alone: rope-index cases (in:* and rope:*), processor and image-processor cases (proc:*), vision
 * tower cases (out:model.visual.* without input ids) and optimizer cases (param:*, step1:*, train:*).
 */
export function referenceKind(names: string[]): ReferenceKindInfo {
  const has = (p: string) => names.some((k) => k.startsWith(p));
  if (names.includes('in:input_ids') && names.some(isModelOutput)) return { kind: 'model', evidence: 'in:input_ids and model outputs' };
  if (has('proc:')) {
    // the processor's output has token ids; the image processor's only pixel values and grids (or resize cases)
    return names.includes('proc:input_ids') ? { kind: 'processor', evidence: 'proc:* tensors with proc:input_ids' } : { kind: 'image-processor', evidence: 'proc:* tensors without proc:input_ids' };
  }
  if (has('rope:') && names.every((k) => k.startsWith('in:') || k.startsWith('rope:'))) return { kind: 'rope-index', evidence: 'in:* and rope:* tensors only' };
  if (has('out:model.visual.') && !names.includes('in:input_ids')) return { kind: 'vision-tower', evidence: 'out:model.visual.* without in:input_ids' };
  if (has('param:') || has('step1:') || has('train:')) return { kind: 'optimizer', evidence: `tensors ${prefixes(names).join(', ')}` };
  return { kind: 'unknown', evidence: names.length ? `tensors ${prefixes(names).join(', ')}` : 'no tensors' };
}

/** Reads the model inputs from a reference file. */
export function referenceInputs(ref: Ref): CausalLmInputs {
  const get = (k: string) => ref.get(k);
  const ids = get('in:input_ids');
  if (!ids) throw new Error("reference file has no 'in:input_ids'");
  const inputs: CausalLmInputs = { inputIds: rows2d(ids) };
  const mask = get('in:attention_mask');
  if (mask) inputs.attentionMask = rows2d(mask);
  const pos = get('in:position_ids');
  if (pos) inputs.positionIds = rows3d(pos);
  const pv = get('in:pixel_values');
  if (pv) {
    inputs.pixelValues = tf.tensor2d(pv.data as Float32Array, pv.shape as [number, number]);
    inputs.imageGridThw = rows2d(get('in:image_grid_thw')!);
  }
  const pvv = get('in:pixel_values_videos');
  if (pvv) {
    inputs.pixelValuesVideos = tf.tensor2d(pvv.data as Float32Array, pvv.shape as [number, number]);
    inputs.videoGridThw = rows2d(get('in:video_grid_thw')!);
  }
  const labels = get('in:labels');
  if (labels) inputs.labels = rows2d(labels);
  return inputs;
}

/**
 * Compares `actual` with `expected`. Tensors whose leading dims are [B, L] (or [3, B, L] for positions) are
 * compared on non-padding tokens only: the reference computes arbitrary values at padded positions.
 */
export function compare(name: string, actual: ArrayLike<number>, expected: HostTensor, atol: number, rtol: number, mask?: number[][]): Comparison {
  const shape = expected.shape;
  if (actual.length !== expected.data.length) {
    return { name, shape, maxAbs: Infinity, maxRel: Infinity, ok: false, note: `size ${actual.length} != ${expected.data.length}` };
  }
  let keep: (i: number) => boolean = () => true;
  let note: string | undefined;
  if (mask && mask.some((r) => r.includes(0))) {
    const B = mask.length, L = mask[0]!.length;
    const lead = shape[0] === 3 && shape[1] === B && shape[2] === L ? 1 : shape[0] === B && shape[1] === L ? 0 : -1;
    if (lead >= 0) {
      const inner = shape.slice(lead + 2).reduce((a, b) => a * b, 1);
      keep = (i) => {
        const bl = Math.floor(i / inner) % (B * L);
        return mask[Math.floor(bl / L)]![bl % L] === 1;
      };
      note = 'non-padding tokens';
    }
  }
  let maxAbs = 0, maxRel = 0, ok = true;
  for (let i = 0; i < actual.length; i++) {
    if (!keep(i)) continue;
    const e = expected.data[i]!, d = Math.abs(actual[i]! - e);
    if (!(d <= atol + rtol * Math.abs(e))) ok = false;
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    maxRel = Math.max(maxRel, d / Math.max(Math.abs(e), 1e-12));
  }
  return { name, shape, maxAbs, maxRel, ok, ...(note ? { note } : {}) };
}

/** Runs every comparison the reference file allows. Tensors it holds that the model cannot produce are reported as not ok. */
export async function runParity(model: Glm4vForConditionalGeneration, ref: Ref, opts: ParityOptions = {}): Promise<Comparison[]> {
  const atol = opts.atol ?? 1e-4, rtol = opts.rtol ?? 0;
  const inputs = referenceInputs(ref);
  const mask = inputs.attentionMask as number[][] | undefined;
  const names = [...ref.keys()].filter((k) => !k.startsWith('in:'));
  const outPaths = names.filter((k) => k.startsWith('out:')).map((k) => k.slice(4));
  const wantGrads = opts.grads ?? names.some((k) => k.startsWith('grad:'));
  const results: Comparison[] = [];
  const done = new Set<string>();
  const add = (name: string, actual: ArrayLike<number>, exact = false) => {
    results.push(compare(name, actual, ref.get(name)!, exact ? 0 : atol, exact ? 0 : rtol, mask));
    done.add(name);
  };
  try {
    const needForward = names.some((k) => !k.startsWith('gen:'));
    if (needForward) {
      const vars = model.namedParameters();
      let grads: Record<string, tf.Tensor> = {};
      const { result: out, outputs } = captureOutputs(model, outPaths, () => {
        if (!wantGrads) return model.forward(inputs);
        let kept: ReturnType<typeof model.forward> | undefined;
        const g = variableGradsFreeing(() => {
          kept = model.forward(inputs);
          tf.keep(kept.logits);
          if (!kept.loss) throw new Error("grad:* needs 'in:labels' in the reference file");
          return kept.loss;
        }, [...vars.values()]);
        grads = g.grads;
        return { ...kept!, loss: g.value };
      });
      for (const [p, t] of outputs) if (ref.has(`out:${p}`)) add(`out:${p}`, await t.data());
      if (ref.has('logits')) add('logits', await out.logits.data());
      if (ref.has('loss') && out.loss) {
        const c = compare('loss', await out.loss.data(), ref.get('loss')!, 0, Math.max(rtol, 1e-5));
        results.push(c);
        done.add('loss');
      }
      if (ref.has('rope:position_ids')) add('rope:position_ids', out.positionIds.flat(2), true);
      if (ref.has('rope:deltas')) add('rope:deltas', out.ropeDeltas, true);
      for (const [key, v] of vars) {
        const g = grads[v.name];
        if (ref.has(`grad:${key}`) && g) add(`grad:${key}`, await g.data());
      }
      tf.dispose([out.logits, out.loss, ...outputs.values(), ...Object.values(grads)]);
    }
    if (ref.has('gen:sequences')) {
      if (!opts.generate) throw new Error('gen:sequences needs a generate function');
      const max = Number(ref.get('gen:sequences')!.shape[1]) - (inputs.inputIds as number[][])[0]!.length;
      const seq = await opts.generate(model, inputs, max);
      const exp = ref.get('gen:sequences')!;
      const flat = seq.flat();
      results.push(flat.length === exp.data.length ? compare('gen:sequences', flat, exp, 0, 0) : { name: 'gen:sequences', shape: exp.shape, maxAbs: Infinity, maxRel: Infinity, ok: false, note: `got [${seq.length}, ${seq[0]?.length}]` });
      done.add('gen:sequences');
    }
  } finally {
    tf.dispose([inputs.pixelValues, inputs.pixelValuesVideos].filter((t): t is tf.Tensor2D => t !== undefined));
  }
  for (const n of names) if (!done.has(n)) results.push({ name: n, shape: ref.get(n)!.shape, maxAbs: Infinity, maxRel: Infinity, ok: false, note: 'not produced by the model' });
  return results;
}

/** The table and summary line `glm46v parity` prints, one string per line (the browser page prints the same). */
export function formatParity(results: Comparison[], atol: number, rtol: number): string[] {
  const w = Math.max(...results.map((r) => r.name.length), 4);
  const lines = [`${'name'.padEnd(w)}  ${'shape'.padEnd(16)}  max_abs_diff  max_rel_diff  ok`];
  for (const r of results) {
    lines.push(`${r.name.padEnd(w)}  ${JSON.stringify(r.shape).padEnd(16)}  ${r.maxAbs.toExponential(3).padStart(12)}  ${r.maxRel.toExponential(3).padStart(12)}  ${r.ok ? 'ok' : 'FAIL'}${r.note ? `  (${r.note})` : ''}`);
  }
  const passed = results.filter((r) => r.ok).length;
  const worst = results.reduce((m, r) => (r.maxAbs > m.maxAbs ? r : m), results[0]!);
  lines.push(`parity: ${passed}/${results.length} tensors within atol=${atol} rtol=${rtol}; worst ${worst.name} max_abs_diff=${worst.maxAbs.toExponential(3)}`);
  return lines;
}
