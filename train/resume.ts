// Resumable training checkpoints (what transformers' Trainer keeps in checkpoint-N: weights, optimizer, scheduler and
// rng state): `checkpoint-<step>/` with trainable.safetensors (the parameters that train, F32), optimizer.safetensors
// (AdamW moments and step counts) and trainer_state.json (step, data position, the options a resume must keep).
// Frozen weights are not stored: they are the base model's. Each folder is written atomically.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { readFloat32, writeFolderAtomically } from '../lib/save';
import { readAllSafetensors, WriteTensor, writeSafetensorsAsync } from '../lib/safetensors';
import type { AdamW } from './adamw';

export interface TrainerState {
  /** optimizer steps done */
  step: number;
  /** position of the next micro-batch in the data stream */
  epoch: number;
  batch: number;
  tokensSeen: number;
  /** options that must be the same when resuming (batch size, seed, lr, LoRA, ...) */
  fingerprint: Record<string, unknown>;
}

const STATE_FILE = 'trainer_state.json';

export function checkpointDir(outDir: string, step: number): string {
  return path.join(outDir, `checkpoint-${step}`);
}

/** Steps of the complete checkpoints in `outDir`, ascending (folders are renamed into place only when complete). */
export function listCheckpoints(outDir: string): number[] {
  if (!fs.existsSync(outDir)) return [];
  return fs.readdirSync(outDir)
    .map((f) => /^checkpoint-(\d+)$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null && fs.existsSync(path.join(outDir, m[0], STATE_FILE)))
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

/** Writes checkpoint `dir` (atomically, one tensor in host memory at a time); nothing may train until it settles. */
export async function saveTrainingCheckpoint(dir: string, trainable: Map<string, tf.Variable>, optimizer: AdamW, state: TrainerState): Promise<void> {
  await writeFolderAtomically(dir, async (tmp) => {
    const shapes = new Map([...trainable].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape }]));
    const tensors = [...trainable].map(([k, v]) => [k, async () => ({ dtype: 'F32', shape: v.shape, data: await readFloat32(v) })] as [string, () => Promise<WriteTensor>]);
    await writeSafetensorsAsync(path.join(tmp, 'trainable.safetensors'), tensors, { format: 'pt' }, shapes);
    await optimizer.saveState(path.join(tmp, 'optimizer.safetensors'));
    fs.writeFileSync(path.join(tmp, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
  });
}

/**
 * Restores the trainable parameters and the optimizer from `dir` and returns its trainer state. The saved options
 * must equal `fingerprint` (an error names the first that differs), and the saved parameters the trainable ones.
 */
export function loadTrainingCheckpoint(dir: string, trainable: Map<string, tf.Variable>, optimizer: AdamW, fingerprint: Record<string, unknown>): TrainerState {
  const state = JSON.parse(fs.readFileSync(path.join(dir, STATE_FILE), 'utf8')) as TrainerState;
  for (const k of new Set([...Object.keys(fingerprint), ...Object.keys(state.fingerprint)])) {
    const [was, now] = [JSON.stringify(state.fingerprint[k]), JSON.stringify(fingerprint[k])];
    if (was !== now) throw new Error(`${dir}: cannot resume with ${k}=${now}; the run was started with ${k}=${was}`);
  }
  const file = path.join(dir, 'trainable.safetensors');
  const { tensors } = readAllSafetensors(file);
  const missing = [...trainable.keys()].filter((k) => !tensors.has(k));
  const extra = [...tensors.keys()].filter((k) => !trainable.has(k));
  if (missing.length || extra.length) {
    throw new Error(`${file}: does not hold the trainable parameters (missing: ${missing.slice(0, 5).join(', ') || 'none'}; unexpected: ${extra.slice(0, 5).join(', ') || 'none'})`);
  }
  for (const [k, v] of trainable) {
    const h = tensors.get(k)!;
    if (!tf.util.arraysEqual(h.shape, v.shape)) throw new Error(`${file}: ${k}: expected ${JSON.stringify(v.shape)}, got ${JSON.stringify(h.shape)}`);
    tf.tidy(() => v.assign(tf.tensor(h.data, h.shape, 'float32')));
  }
  optimizer.loadState(path.join(dir, 'optimizer.safetensors'));
  return state;
}

/** Removes all but the newest `keep` checkpoints. */
export function pruneCheckpoints(outDir: string, keep: number): void {
  const steps = listCheckpoints(outDir);
  for (const s of steps.slice(0, Math.max(0, steps.length - keep))) fs.rmSync(checkpointDir(outDir, s), { recursive: true, force: true });
}
