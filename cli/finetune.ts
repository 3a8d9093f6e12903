// glm46v finetune: trains on chat-format JSONL with a labels loss (full or LoRA) and saves a Hugging Face checkpoint.
import * as path from 'path';
import { initBackend } from '../lib/backend';
import { ChatDataset } from '../lib/train/data';
import { Progress, train, TrainOptions } from '../lib/train/trainer';
import { loadModel } from '../models/glm4v/auto';
import { CliError, FlagSpec, parseArgs, Parsed } from './args';

const USAGE = `usage: glm46v finetune --model DIR --data FILE.jsonl --out DIR [--eval FILE.jsonl] [--epochs N] [--steps N]
         [--batch-size N] [--grad-accum N] [--lr X] [--weight-decay X] [--warmup N] [--clip X] [--seed S]
         [--lora-rank R --lora-alpha A --lora-targets q_proj,v_proj] [--freeze-vision [--train-vision-keys K,...]]
         [--vision-lr-scale F] [--freeze-embeddings] [--max-length N] [--on-too-long skip|error] [--save-every N]
         [--resume] [--first-data FILE.jsonl --first-steps N]

Each JSONL line: {"messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"}, {"type": "text",
"text": "..."}]}, {"role": "assistant", "content": "..."}]} (image paths relative to the file). Only the assistant's
tokens are learned. OUT gets checkpoint-N/ (resumable), log.jsonl, loss.png and the trained model in OUT/final.`;

const FLAGS: Record<string, FlagSpec> = {
  model: { type: 'string', help: 'Hugging Face checkpoint folder to start from' },
  data: { type: 'string', help: 'training chats, one JSON object a line' },
  out: { type: 'string', help: 'run folder (checkpoints, log, plot; the model goes to OUT/final)' },
  eval: { type: 'string', help: 'held-out chats, evaluated every --eval-every steps and at the end' },
  'first-data': { type: 'string', help: 'a curriculum: chats for the first --first-steps steps, then --data (one schedule)' },
  'first-steps': { type: 'number', help: 'optimizer steps on --first-data, counted in --steps' },
  epochs: { type: 'number', help: 'passes over the data (default 1)' },
  steps: { type: 'number', help: 'optimizer steps (overrides --epochs)' },
  'batch-size': { type: 'number', help: 'examples per micro-batch (default 1)' },
  'grad-accum': { type: 'number', help: 'micro-batches per optimizer step (default 1)' },
  lr: { type: 'number', help: 'peak learning rate (default 5e-5; warmup then cosine decay to 0)' },
  'weight-decay': { type: 'number', help: 'AdamW decoupled weight decay, not applied to biases and norms (default 0)' },
  warmup: { type: 'number', help: 'linear warmup steps (default 0)' },
  clip: { type: 'number', help: 'max global gradient norm (default 1; 0 = no clipping)' },
  seed: { type: 'number', help: 'seed of the data order and the LoRA init (default 42)' },
  'lora-rank': { type: 'number', help: 'train LoRA adapters of this rank instead of every weight' },
  'lora-alpha': { type: 'number', help: 'LoRA alpha; the adapter is scaled by alpha / rank (default 2 * rank)' },
  'lora-dropout': { type: 'number', help: 'dropout on the adapter input (default 0)' },
  'lora-targets': { type: 'string', help: 'comma-separated Linear names to adapt (default q_proj,v_proj)' },
  'freeze-vision': { type: 'boolean', help: 'do not train the vision tower (model.visual.*)' },
  'vision-lr-scale': { type: 'number', help: 'the vision tower\'s learning rate as a fraction of --lr (default 1)' },
  'train-vision-keys': { type: 'string', help: 'with --freeze-vision: comma-separated parts of vision weight keys that still train (e.g. position_embedding)' },
  'freeze-embeddings': { type: 'boolean', help: 'do not train the token embeddings' },
  'max-length': { type: 'number', help: 'longest example in tokens, image tokens included' },
  'on-too-long': { type: 'string', help: "what to do with a longer example: 'skip' (default, counted) or 'error'" },
  'eval-every': { type: 'number', help: 'evaluate every N steps (default: at the end only)' },
  'save-every': { type: 'number', help: 'write a resumable checkpoint every N steps (default: never)' },
  'save-dtype': { type: 'string', help: "weights of the saved model: 'F32' (default) or 'BF16'" },
  'shard-size': { type: 'number', help: 'largest safetensors shard of the saved model, in bytes (default: one file)' },
  resume: { type: 'boolean', help: 'continue from the newest checkpoint in OUT' },
  'stop-after': { type: 'number', help: 'stop after N steps without saving the model, as if interrupted (continue with --resume)' },
};

function int(a: Parsed, key: string, min: number): number | undefined {
  const v = a[key] as number | undefined;
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min) throw new CliError(`--${key} must be an integer >= ${min}, got ${v}`);
  return v;
}

/** A number flag at least `min`, or above it when `above` is set. */
function num(a: Parsed, key: string, min: number, above = false): number | undefined {
  const v = a[key] as number | undefined;
  if (v !== undefined && !(above ? v > min : v >= min)) throw new CliError(`--${key} must be ${above ? '>' : '>='} ${min}, got ${v}`);
  return v;
}

function oneOf<T extends string>(a: Parsed, key: string, allowed: T[]): T | undefined {
  const v = a[key] as string | undefined;
  if (v !== undefined && !allowed.includes(v as T)) throw new CliError(`--${key} must be one of ${allowed.join(', ')}, got '${v}'`);
  return v as T | undefined;
}

/** Seconds as m:ss, rounded to the second first (2699.6 s is 45:00, not 44:60). */
export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const t = Math.round(s);
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, '0')}`;
}

function progressLine(p: Progress): string {
  const parts = [`step ${p.step}/${p.totalSteps}`, `loss ${p.loss.toFixed(4)}`, `lr ${p.lr.toExponential(2)}`,
    `grad_norm ${p.gradNorm.toFixed(3)}`, `tok/s ${p.tokensPerSec.toFixed(0)}`, `eta ${fmtTime(p.etaSec)}`];
  if (p.evalLoss !== undefined) parts.push(`eval_loss ${p.evalLoss.toFixed(4)}`);
  return `finetune: ${parts.join('  ')}\n`;
}

/** Parses and checks the flags into trainer options (no backend, no files read). */
export function finetuneOptions(a: Parsed): { model: string; data: string; eval?: string; firstData?: string; firstSteps?: number; train: TrainOptions; maxLength?: number; onTooLong: 'skip' | 'error' } {
  for (const k of ['model', 'data', 'out']) if (!a[k]) throw new CliError(`--${k} is required\n${USAGE}`);
  const rank = int(a, 'lora-rank', 1);
  for (const k of ['lora-alpha', 'lora-dropout', 'lora-targets']) if (a[k] !== undefined && rank === undefined) throw new CliError(`--${k} needs --lora-rank`);
  const dropout = num(a, 'lora-dropout', 0) ?? 0;
  if (dropout >= 1) throw new CliError(`--lora-dropout must be < 1, got ${dropout}`);
  const clip = num(a, 'clip', 0) ?? 1;
  const train: TrainOptions = {
    outDir: a.out as string,
    modelDir: a.model as string,
    lr: num(a, 'lr', 0) ?? 5e-5,
    weightDecay: num(a, 'weight-decay', 0) ?? 0,
    warmupSteps: int(a, 'warmup', 0) ?? 0,
    maxGradNorm: clip === 0 ? Infinity : clip,
    seed: int(a, 'seed', 0) ?? 42,
    batchSize: int(a, 'batch-size', 1) ?? 1,
    gradAccum: int(a, 'grad-accum', 1) ?? 1,
    freezeVision: !!a['freeze-vision'],
    freezeEmbeddings: !!a['freeze-embeddings'],
    visionLrScale: num(a, 'vision-lr-scale', 0, true) ?? 1,
    evalEvery: int(a, 'eval-every', 1) ?? 0,
    saveEvery: int(a, 'save-every', 1) ?? 0,
    resume: !!a.resume,
    saveDtype: oneOf(a, 'save-dtype', ['F32', 'BF16']) ?? 'F32',
  };
  const epochs = int(a, 'epochs', 1), steps = int(a, 'steps', 1), shard = int(a, 'shard-size', 1), stop = int(a, 'stop-after', 1);
  if (stop !== undefined) train.stopAfter = stop;
  if (epochs !== undefined) train.epochs = epochs;
  if (steps !== undefined) train.steps = steps;
  if (shard !== undefined) train.shardBytes = shard;
  if (a['train-vision-keys'] !== undefined) {
    if (!a['freeze-vision']) throw new CliError('--train-vision-keys needs --freeze-vision');
    const keys = (a['train-vision-keys'] as string).split(',').map((t) => t.trim()).filter(Boolean);
    if (keys.length === 0) throw new CliError('--train-vision-keys names no key');
    train.trainVisionKeys = keys;
  }
  if (rank !== undefined) {
    const targets = ((a['lora-targets'] as string | undefined) ?? 'q_proj,v_proj').split(',').map((t) => t.trim()).filter(Boolean);
    if (targets.length === 0) throw new CliError('--lora-targets names no layer');
    train.lora = { rank, alpha: num(a, 'lora-alpha', 0, true) ?? 2 * rank, dropout, targets };
  }
  const maxLength = int(a, 'max-length', 1);
  const firstSteps = int(a, 'first-steps', 1);
  if ((firstSteps === undefined) !== (a['first-data'] === undefined)) throw new CliError('--first-data and --first-steps go together');
  if (firstSteps !== undefined && steps !== undefined && firstSteps >= steps) throw new CliError(`--first-steps (${firstSteps}) must be fewer than --steps (${steps})`);
  return {
    model: a.model as string, data: a.data as string, ...(a.eval ? { eval: a.eval as string } : {}), train,
    ...(firstSteps !== undefined ? { firstData: a['first-data'] as string, firstSteps } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}), onTooLong: oneOf(a, 'on-too-long', ['skip', 'error']) ?? 'skip',
  };
}

export const command = {
  summary: 'train on chat-format JSONL and save a Hugging Face checkpoint',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, FLAGS, USAGE);
    if (!a) return;
    const o = finetuneOptions(a);
    const ds = ChatDataset.fromPretrained(o.model, { ...(o.maxLength !== undefined ? { maxLength: o.maxLength } : {}), onTooLong: o.onTooLong });
    const trainData = ds.load(o.data);
    const evalData = o.eval ? ds.load(o.eval) : undefined;
    const firstData = o.firstData ? ds.load(o.firstData) : undefined;
    for (const d of [trainData, evalData, firstData]) {
      if (d?.skipped.length) {
        process.stderr.write(`finetune: ${d.file}: skipped ${d.skipped.length} example(s) longer than ${o.maxLength} tokens (lines ${d.skipped.map((s) => s.line).join(', ')})\n`);
      }
    }
    process.stderr.write(`finetune: ${trainData.examples.length} training examples${evalData ? `, ${evalData.examples.length} held out` : ''}${firstData ? `, ${firstData.examples.length} for the first ${o.firstSteps} steps` : ''}\n`);
    await initBackend();
    const model = loadModel(o.model);
    try {
      const first = firstData ? { first: { data: firstData, steps: o.firstSteps! } } : {};
      const r = await train(model, ds, trainData, evalData, { ...o.train, ...first, onProgress: (p) => process.stderr.write(progressLine(p)) });
      if (!r.savedDir) process.stdout.write(`finetune: stopped at steps=${r.steps} loss=${r.finalLoss.toFixed(6)}; continue with --resume\n`);
      else process.stdout.write(`finetune: steps=${r.steps} final_loss=${r.finalLoss.toFixed(6)} saved=${path.resolve(r.savedDir)}\n`);
    } finally {
      model.dispose();
    }
  },
};
