// Our side of the benchmark, run by bench.ts in fresh child processes: the timed rows (the load row is
// compiled_rows.js), on the backend initBackend picks (GLM46V_BACKEND, GLM46V_WASM_THREADS). Times in ms,
// wall-clock and process CPU: each row is the list of timed runs after warm-up.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../lib/backend';
import { loadNativeBackend } from '../../lib/native/load';
import { decodeOne, prefill } from '../../generation/generate';
import { HostTensor, SafetensorsFile } from '../../lib/safetensors';
import { AdamW, fusedParameterSets, paramGroups } from '../../train/adamw';
import { microBatchGrads } from '../../train/step';
import { loadModel } from '../../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../../models/glm4v/model';

export interface RunOptions {
  model: string;
  warmup: number;
  runs: number;
  decodeSteps: number;
  trainSteps: number;
  contexts: number[];
  matmul: number[];
  rows: Set<string>;
  /** activation checkpointing in the training row: every vision block and decoder layer, the decoder layers only, none */
  checkpointing: 'all' | 'text' | 'none';
}

/** A field of /proc/self/status in MiB (VmRSS now, VmHWM the peak so far); -1 where /proc is missing. */
export function procMiB(field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) / 1024 : -1;
  } catch {
    return -1;
  }
}

const log = (msg: string) => process.stderr.write(`  [ours] ${msg}\n`);

/** Wall-clock and process CPU time (all threads) of each run, in ms. */
interface Timing { wall: number[]; cpu: number[] }

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function timed(fn: () => Promise<void>, warmup: number, runs: number): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: Timing = { wall: [], cpu: [] };
  for (let i = 0; i < runs; i++) {
    const [w0, c0] = [performance.now(), cpuMs()];
    await fn();
    t.wall.push(performance.now() - w0);
    t.cpu.push(cpuMs() - c0);
  }
  return t;
}

/** Stores a timing as `<name>_ms` (wall) and `<name>_cpu_ms`. */
function put(res: Record<string, unknown>, name: string, t: Timing): void {
  res[`${name}_ms`] = t.wall;
  res[`${name}_cpu_ms`] = t.cpu;
}

const rows2d = (h: HostTensor): number[][] => {
  const [B, L] = h.shape as [number, number];
  return Array.from({ length: B }, (_, b) => Array.from(h.data.subarray(b * L, (b + 1) * L)));
};

/**
 * Waits for `t` and frees it. tensorflow and wasm run each kernel to completion inside the call, so their result is
 * ready when the op returns: reading it back (5.8 MB for the GEMM row, 2.7 ms of a 9.6 ms product on tensorflow) would
 * time a copy that PyTorch's side does not make. Other backends (webgpu) are waited for by reading the values.
 */
async function awaitDispose(t: tf.Tensor): Promise<void> {
  if (tf.getBackend() !== 'tensorflow' && tf.getBackend() !== 'wasm') await t.data();
  t.dispose();
}

export async function runRows(o: RunOptions): Promise<Record<string, unknown>> {
  const backend = await initBackend({ quiet: true });
  const wasm = backend === 'wasm' ? (require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm')) : undefined;
  const native = backend === 'tensorflow' ? loadNativeBackend() : undefined;
  const res: Record<string, unknown> = { backend, threads: wasm ? wasm.getThreadsCount() : undefined, tensorflow: native?.ok ? native.info.tensorflow : undefined };
  const f = new SafetensorsFile(path.join(o.model, 'inputs.safetensors'));
  const inp = (k: string) => f.read(k);
  const meta = f.metadata;
  const model: Glm4vForConditionalGeneration = loadModel(o.model);
  try {
    const [M, K, N] = o.matmul as [number, number, number];
    const a = tf.randomNormal([M, K]), b = tf.randomNormal([K, N]), w = tf.randomNormal([N, K]);
    const plain = () => awaitDispose(tf.matMul(a, b));
    const linear = () => awaitDispose(tf.matMul(a, w, false, true)); // every Linear's form: weight [out, in]
    // The GEMM rate under the same load as a row: both forms right before and right after it, the faster kept.
    const bracket = async (name: string) => {
      const p = await timed(plain, 1, 3), l = await timed(linear, 1, 3);
      const key = `gemm_${name}`;
      const prev = (res[`${key}_ms`] as number[] | undefined) ?? [], prevCpu = (res[`${key}_cpu_ms`] as number[] | undefined) ?? [];
      put(res, key, { wall: [...prev, Math.min(median(p.wall), median(l.wall))], cpu: [...prevCpu, Math.min(median(p.cpu), median(l.cpu))] });
    };
    if (o.rows.has('matmul')) {
      put(res, 'matmul', await timed(plain, 2, Math.max(o.runs, 5)));
      put(res, 'matmul_linear', await timed(linear, 2, Math.max(o.runs, 5)));
    }
    if (o.rows.has('vision')) {
      const h = inp('vision.pixel_values');
      const pv = tf.tensor2d(h.data as Float32Array, h.shape as [number, number]);
      const grid = JSON.parse(meta.vision_grid_thw!) as number[][];
      await bracket('vision');
      put(res, 'vision', await timed(() => awaitDispose(model.model.getImageFeatures(pv, grid)), o.warmup, o.runs));
      await bracket('vision');
      pv.dispose();
      log(`vision ${fmt(res.vision_ms)}`);
    }
    if (o.rows.has('prefill')) {
      const ids = rows2d(inp('prefill.input_ids'));
      let last: Float32Array | undefined;
      await bracket('prefill');
      put(res, 'prefill', await timed(async () => {
        const { logits, state } = await prefill(model, { inputIds: ids });
        state.cache.dispose();
        last = logits[0];
      }, o.warmup, o.runs));
      await bracket('prefill');
      res.prefill_last_logits = Array.from(last!);
      log(`prefill ${fmt(res.prefill_ms)}`);
    }
    if (o.rows.has('long')) {
      // the longest decode context as one prompt: where attention's share of a prefill grows (causal blocks)
      const n = Math.max(...o.contexts);
      const ids = [rows2d(inp('decode.context_ids'))[0]!.slice(0, n)];
      put(res, 'prefill_long', await timed(async () => (await prefill(model, { inputIds: ids })).state.cache.dispose(), o.warmup, Math.min(o.runs, 3)));
      log(`prefill of ${n} ${fmt(res.prefill_long_ms)}`);
    }
    if (o.rows.has('decode')) {
      // Every context is prefilled, then their decode steps alternate, so that all contexts see the same machine load
      // (on a shared machine a row measured a minute later can run 30% slower or faster).
      const ctxAll = rows2d(inp('decode.context_ids'))[0]!, toks = rows2d(inp('decode.tokens'))[0]!;
      let times: Timing[] = [];
      for (let rep = 0; rep <= o.warmup; rep++) {
        const states = [];
        for (const ctx of o.contexts) states.push((await prefill(model, { inputIds: [ctxAll.slice(0, ctx)] })).state);
        try {
          const steps: Timing[] = o.contexts.map(() => ({ wall: [], cpu: [] }));
          for (let s = 0; s < o.decodeSteps; s++) {
            for (const [i, state] of states.entries()) {
              const [w0, c0] = [performance.now(), cpuMs()];
              await decodeOne(model, [toks[s]!], state);
              steps[i]!.wall.push(performance.now() - w0);
              steps[i]!.cpu.push(cpuMs() - c0);
            }
          }
          // the first step after a prefill is warm-up too
          times = steps.map((t) => ({ wall: t.wall.slice(1), cpu: t.cpu.slice(1) }));
        } finally {
          for (const state of states) state.cache.dispose();
        }
      }
      for (const [i, ctx] of o.contexts.entries()) {
        put(res, `decode${ctx}`, times[i]!);
        log(`decode@${ctx} ${fmt(times[i]!.wall)}`);
      }
    }
    if (o.rows.has('train')) {
      await bracket('train');
      Object.assign(res, await trainRow(model, inp, meta, o));
      await bracket('train');
      log(`train ${fmt(res.train_ms)}`);
    }
    tf.dispose([a, b, w]);
  } catch (e) {
    // said before the cleanup below, which fails too once the wasm module has aborted (out of heap)
    log(`failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    throw e;
  } finally {
    f.close();
    res.tensors_live = tf.memory().numTensors;
    res.peak_rss_mib = procMiB('VmHWM');
    model.dispose();
    shutdownBackend();
  }
  return res;
}

/**
 * Training steps as the package takes them (train/: microBatchGrads on the whole batch, then AdamW with decoupled
 * decay on every parameter, as torch.optim.AdamW(model.parameters()) does); no clipping, as on the PyTorch side.
 */
async function trainRow(model: Glm4vForConditionalGeneration, inp: (k: string) => HostTensor, meta: Record<string, string>, o: RunOptions): Promise<Record<string, unknown>> {
  const ids = rows2d(inp('train.input_ids')), labels = rows2d(inp('train.labels'));
  const h = inp('train.pixel_values');
  const pv = tf.tensor2d(h.data as Float32Array, h.shape as [number, number]);
  const grid = JSON.parse(meta.train_grid_thw!) as number[][];
  const params = new Map([...model.namedParameters()].filter(([, v]) => v.trainable)); // glm4v_moe's correction bias is a buffer
  // Fits the 4 GiB wasm heap without activation checkpointing since the backward frees as it goes (train/backward.ts).
  if (o.checkpointing !== 'none') model.gradientCheckpointingEnable(params.values());
  if (o.checkpointing === 'text') model.model.visual.gradientCheckpointing = undefined;
  const opt = new AdamW(params, paramGroups(params, 0.01, true), { lr: 1e-5, betas: [0.9, 0.999], eps: 1e-8, fused: fusedParameterSets(model, params) });
  const losses: number[] = [];
  const step = async () => {
    const { loss, grads } = microBatchGrads(model, { inputIds: ids, pixelValues: pv, imageGridThw: grid, labels }, params, 1);
    opt.step(grads);
    tf.dispose([...grads.values()]);
    losses.push((await loss.data())[0]!);
    loss.dispose();
  };
  try {
    const res: Record<string, unknown> = { train_losses: losses, train_checkpointing: o.checkpointing };
    put(res, 'train', await timed(step, 1, o.trainSteps));
    return res;
  } finally {
    opt.dispose();
    pv.dispose();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
const fmt = (xs: unknown) => `median ${median(xs as number[]).toFixed(1)} ms over ${(xs as number[]).length}`;
