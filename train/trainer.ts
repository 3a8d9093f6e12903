// The fine-tuning loop, after transformers' Trainer: seeded data order, gradient accumulation, clip_grad_norm_,
// AdamW with warmup + cosine decay, periodic evaluation, resumable checkpoints, a JSONL log and a loss plot; then
// the model saved in Hugging Face layout (LoRA merged). One host read per optimizer step (loss and grad norm).
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { CausalLm } from '../generation/model';
import { saveCheckpoint } from '../lib/save';
import { AdamW, fusedParameterSets, paramGroups, scaleGroups } from './adamw';
import { ChatDataset, Example, LoadedData } from './data';
import { applyLora, loraParameters, setLoraTraining } from './lora';
import { checkpointDir, listCheckpoints, loadTrainingCheckpoint, pruneCheckpoints, saveTrainingCheckpoint, TrainerState } from './resume';
import { DataOrder } from './data_order';
import { TrainLog } from './log';
import { mixSeed } from './rng';
import { cosineWithWarmup } from './schedule';
import { trainStep } from './step';
import { shiftedLabelTargets } from '../layers/loss';

export interface LoraConfig {
  rank: number;
  alpha: number;
  dropout: number;
  targets: string[];
}

export interface TrainOptions {
  /** run folder: checkpoint-N/, log.jsonl, loss.png and the final model in final/ */
  outDir: string;
  /** folder the model was loaded from: its tokenizer, template and processor files go with the saved model */
  modelDir: string;
  epochs?: number;
  /** optimizer steps; default: epochs over the data */
  steps?: number;
  /**
   * A curriculum: the first `steps` optimizer steps draw their batches from `data` (in its own seeded order), the rest
   * from the training data; one warmup + cosine schedule and one optimizer state run through both.
   */
  first?: { data: LoadedData; steps: number };
  batchSize?: number;
  gradAccum?: number;
  lr?: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  warmupSteps?: number;
  /** clip the global gradient norm to this (Infinity: never) */
  maxGradNorm?: number;
  seed?: number;
  lora?: LoraConfig;
  freezeVision?: boolean;
  /** the vision tower's learning rate as a fraction of lr (default 1) */
  visionLrScale?: number;
  /** with freezeVision: vision weights whose checkpoint key contains one of these still train (e.g. 'position_embedding') */
  trainVisionKeys?: string[];
  freezeEmbeddings?: boolean;
  /** evaluate on the held-out data every N steps (and at the end); 0 = only at the end */
  evalEvery?: number;
  /** write a resumable checkpoint every N steps; 0 = never */
  saveEvery?: number;
  saveTotalLimit?: number;
  /** continue from the newest checkpoint in outDir */
  resume?: boolean;
  /** stop after this many optimizer steps with a checkpoint but no final model (continue with `resume`) */
  stopAfter?: number;
  saveDtype?: 'F32' | 'BF16';
  shardBytes?: number;
  onProgress?: (p: Progress) => void;
}

export interface Progress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSec: number;
  elapsedSec: number;
  etaSec: number;
  evalLoss?: number;
}

export interface TrainResult {
  steps: number;
  finalLoss: number;
  evalLoss?: number;
  /** the Hugging Face folder written, or undefined when stopped early */
  savedDir?: string;
}

/**
 * The parameters that train, keyed by checkpoint key: the LoRA adapters when `lora` is set (applied here), else every
 * parameter but the vision tower (freezeVision, except the keys matching trainVisionKeys) and the token embeddings
 * (freezeEmbeddings).
 */
export function prepareTrainable(model: CausalLm, opts: Pick<TrainOptions, 'lora' | 'freezeVision' | 'trainVisionKeys' | 'freezeEmbeddings' | 'seed'>): Map<string, tf.Variable> {
  if (opts.lora) {
    applyLora(model, { ...opts.lora, seed: opts.seed ?? 0 });
    return loraParameters(model);
  }
  const params = [...model.namedParameters()];
  const keep = opts.trainVisionKeys ?? [];
  if (keep.length && !opts.freezeVision) throw new Error('trainVisionKeys needs freezeVision');
  for (const k of keep) {
    if (!params.some(([key]) => key.startsWith('model.visual.') && key.includes(k))) throw new Error(`trainVisionKeys: no vision weight key contains '${k}'`);
  }
  const frozenVision = (k: string) => opts.freezeVision && k.startsWith('model.visual.') && !keep.some((s) => k.includes(s));
  // a non-trainable variable is a buffer (glm4v_moe's e_score_correction_bias): loaded and saved, never trained
  return new Map(params.filter(([k, v]) => v.trainable && !frozenVision(k) && !(opts.freezeEmbeddings && k === 'model.language_model.embed_tokens.weight')));
}

/** Shifted labels counted by the loss (the weight of a batch in the eval mean). */
const countedLabels = (labels: number[][]) => shiftedLabelTargets(labels, Number.MAX_SAFE_INTEGER).rows.length;

/** Token-weighted mean loss over `examples` in batches, no gradients; one host read at the end. */
export async function evaluate(model: CausalLm, ds: ChatDataset, examples: Example[], batchSize: number): Promise<number> {
  let sum = tf.scalar(0);
  let n = 0;
  for (let i = 0; i < examples.length; i += batchSize) {
    const b = ds.collate(examples.slice(i, i + batchSize));
    const k = countedLabels(b.inputs.labels);
    if (k > 0) {
      const next = tf.tidy(() => tf.add(sum, tf.mul(model.forward(b.inputs).loss!, tf.scalar(k))));
      sum.dispose();
      sum = next as tf.Scalar;
      n += k;
    }
    b.inputs.pixelValues?.dispose();
  }
  const total = (await sum.data())[0]!;
  sum.dispose();
  return total / n;
}

/** AdamW over the trainable parameters, the vision tower at its own lr scale, glm4v_moe's experts fused. */
function makeOptimizer(model: CausalLm, trainable: Map<string, tf.Variable>, o: TrainOptions, lr: number): AdamW {
  let groups = paramGroups(trainable, o.weightDecay ?? 0);
  const scale = o.visionLrScale ?? 1;
  if (scale !== 1) groups = scaleGroups(groups, (k) => k.startsWith('model.visual.'), scale);
  // fused: glm4v_moe's experts are one torch tensor per layer, so an expert no token chose still decays (adamw.ts)
  return new AdamW(trainable, groups, { lr, betas: o.betas ?? [0.9, 0.999], eps: o.eps ?? 1e-8, fused: fusedParameterSets(model, trainable) });
}

/** What a checkpoint must agree on to be resumed: the data, the batch, the schedule and what trains. */
function fingerprintOf(o: TrainOptions, examples: number, totalSteps: number, firstSteps: number, firstExamples: number): Record<string, unknown> {
  const visionLrScale = o.visionLrScale ?? 1;
  return {
    examples, batch_size: o.batchSize ?? 1, grad_accum: o.gradAccum ?? 1, seed: o.seed ?? 0, lr: o.lr ?? 1e-5, total_steps: totalSteps,
    weight_decay: o.weightDecay ?? 0, warmup: o.warmupSteps ?? 0, max_grad_norm: o.maxGradNorm ?? null, lora: o.lora ?? null,
    freeze_vision: !!o.freezeVision, freeze_embeddings: !!o.freezeEmbeddings,
    ...(o.trainVisionKeys?.length ? { train_vision_keys: o.trainVisionKeys } : {}),
    ...(visionLrScale !== 1 ? { vision_lr_scale: visionLrScale } : {}),
    ...(firstSteps ? { first_steps: firstSteps, first_examples: firstExamples } : {}),
  };
}

/** Optimizer steps of the run: `steps`, or `epochs` over the data; the first stage must leave some. */
function plannedSteps(o: TrainOptions, trainData: LoadedData): { totalSteps: number; firstSteps: number } {
  const N = trainData.examples.length, bs = o.batchSize ?? 1, G = o.gradAccum ?? 1;
  if (N === 0) throw new Error(`${trainData.file}: no training examples${trainData.skipped.length ? ` (${trainData.skipped.length} skipped as too long)` : ''}`);
  const totalSteps = o.steps ?? Math.max(1, Math.ceil(((o.epochs ?? 1) * Math.ceil(N / bs)) / G));
  const firstSteps = o.first?.steps ?? 0;
  if (firstSteps > 0 && o.first!.data.examples.length === 0) throw new Error(`${o.first!.data.file}: no examples for the first ${firstSteps} steps`);
  if (firstSteps >= totalSteps) throw new Error(`first-stage steps (${firstSteps}) must be fewer than the run's ${totalSteps} steps`);
  return { totalSteps, firstSteps };
}

/** Runs the whole fine-tuning; resumable with `resume`. Prepares the model (LoRA, frozen parts) itself. */
export async function train(model: CausalLm, ds: ChatDataset, trainData: LoadedData, evalData: LoadedData | undefined, o: TrainOptions): Promise<TrainResult> {
  const bs = o.batchSize ?? 1, G = o.gradAccum ?? 1, seed = o.seed ?? 0, lr = o.lr ?? 1e-5;
  const { totalSteps, firstSteps } = plannedSteps(o, trainData);
  const schedule = cosineWithWarmup({ warmupSteps: o.warmupSteps ?? 0, totalSteps });
  const trainable = prepareTrainable(model, o);
  if (trainable.size === 0) throw new Error('nothing to train: every parameter is frozen');
  const optimizer = makeOptimizer(model, trainable, o, lr);
  const fingerprint = fingerprintOf(o, trainData.examples.length, totalSteps, firstSteps, o.first?.data.examples.length ?? 0);
  fs.mkdirSync(o.outDir, { recursive: true });
  let state: TrainerState = { step: 0, epoch: 0, batch: 0, tokensSeen: 0, fingerprint };
  const saved = o.resume ? listCheckpoints(o.outDir) : [];
  if (saved.length) state = loadTrainingCheckpoint(checkpointDir(o.outDir, saved[saved.length - 1]!), trainable, optimizer, fingerprint);
  const log = new TrainLog(o.outDir, o.resume ? state.step : undefined);
  const data = new DataOrder(trainData.examples, o.first?.data.examples ?? [], bs, G, seed, state.epoch, state.batch);
  const runEval = async () => {
    if (!evalData || evalData.examples.length === 0) return undefined;
    const v = await evaluate(model, ds, evalData.examples, bs);
    log.append({ step: state.step, eval_loss: v });
    return v;
  };

  const t0 = Date.now(), startStep = state.step;
  let lastLoss = log.lastLoss(), lastEval: number | undefined;
  try {
    while (state.step < totalSteps) {
      const tStep = Date.now(), step = state.step;
      const batches = Array.from({ length: G }, (_, i) => ds.collate(step < firstSteps ? data.firstStage(step, i) : data.next()));
      optimizer.lr = lr * schedule(step);
      const out = trainStep(model, batches.map((b) => b.inputs), trainable, optimizer, {
        maxGradNorm: o.maxGradNorm ?? Infinity,
        beforeMicroBatch: (i) => o.lora && setLoraTraining(model, true, mixSeed(seed, step, i)),
      });
      for (const b of batches) b.inputs.pixelValues?.dispose();
      const both = tf.stack([out.loss, out.gradNorm]);
      const [loss, gradNorm] = await both.data(); // the one host read of the step
      tf.dispose([both, out.loss, out.gradNorm]);
      if (o.lora) setLoraTraining(model, false);
      const tokens = batches.reduce((n, b) => n + b.numTokens, 0);
      state = { ...state, step: step + 1, epoch: data.epoch, batch: data.batch, tokensSeen: state.tokensSeen + tokens };
      lastLoss = loss!;
      const elapsedSec = (Date.now() - t0) / 1000, tokensPerSec = tokens / Math.max((Date.now() - tStep) / 1000, 1e-9);
      log.append({ step: state.step, loss: lastLoss, lr: optimizer.lr, grad_norm: gradNorm!, tokens, tokens_per_sec: tokensPerSec, elapsed_s: elapsedSec });
      const evalLoss = state.step === totalSteps || (o.evalEvery ? state.step % o.evalEvery === 0 : false) ? await runEval() : undefined;
      if (evalLoss !== undefined) lastEval = evalLoss;
      o.onProgress?.({
        step: state.step, totalSteps, epoch: state.epoch, loss: lastLoss, lr: optimizer.lr, gradNorm: gradNorm!, tokensPerSec, elapsedSec,
        etaSec: (elapsedSec / (state.step - startStep)) * (totalSteps - state.step), ...(evalLoss !== undefined ? { evalLoss } : {}),
      });
      const stop = o.stopAfter !== undefined && state.step >= o.stopAfter && state.step < totalSteps;
      if ((o.saveEvery && state.step % o.saveEvery === 0 && state.step < totalSteps) || stop) {
        await saveTrainingCheckpoint(checkpointDir(o.outDir, state.step), trainable, optimizer, state);
        pruneCheckpoints(o.outDir, o.saveTotalLimit ?? 2);
        log.plot();
      }
      if (stop) return { steps: state.step, finalLoss: lastLoss };
    }
  } finally {
    optimizer.dispose();
  }
  log.plot();
  const savedDir = path.join(o.outDir, 'final');
  await saveCheckpoint(model, savedDir, { copyFrom: o.modelDir, dtype: o.saveDtype ?? 'F32', ...(o.shardBytes ? { shardBytes: o.shardBytes } : {}) });
  return { steps: state.step, finalLoss: lastLoss, ...(lastEval !== undefined ? { evalLoss: lastEval } : {}), savedDir };
}
