// glm46v finetune: trains on chat-format JSONL with a labels loss (full or LoRA) and saves a Hugging Face checkpoint.
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '../lib/backend';
import { ChatDataset } from '../train/data';
import { checkpointDir, listCheckpoints } from '../train/resume';
import { Progress, train, TrainOptions } from '../train/trainer';
import { loadModel } from '../models/glm4v/auto';
import { CliError, FlagSpec, parseArgs, Parsed } from './args';

const USAGE = `usage: glm46v finetune --model DIR --data FILE.jsonl --out DIR [--eval FILE.jsonl] [--epochs N] [--steps N]
         [--batch-size N] [--grad-accum N] [--lr X] [--weight-decay X] [--warmup N] [--clip X] [--seed S]
         [--lora-rank R --lora-alpha A --lora-targets q_proj,v_proj] [--freeze-vision [--train-vision-keys K,...]]
         [--vision-lr-scale F] [--freeze-embeddings] [--max-length N] [--on-too-long skip|error] [--save-every N]
         [--resume | --overwrite] [--first-data FILE.jsonl --first-steps N]

Each JSONL line: {"messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"}, {"type": "text",
"text": "..."}]}, {"role": "assistant", "content": "..."}]} (image paths relative to the file). Only the assistant's
tokens are learned. OUT gets checkpoint-N/ (resumable), log.jsonl, loss.png and the trained model in OUT/final.`;

const int = (min: number, help: string): FlagSpec => ({ type: 'number', integer: true, min, help });
const above = (min: number, help: string): FlagSpec => ({ type: 'number', min, minExclusive: true, help });
const atLeast = (min: number, help: string): FlagSpec => ({ type: 'number', min, help });

const FLAGS: Record<string, FlagSpec> = {
  model: { type: 'string', required: true, help: 'Hugging Face checkpoint folder to start from' },
  data: { type: 'string', required: true, help: 'training chats, one JSON object a line' },
  out: { type: 'string', required: true, help: 'run folder (checkpoints, log, plot; the model goes to OUT/final); new or empty unless --resume or --overwrite' },
  overwrite: { type: 'boolean', help: "replace the run already in OUT (its checkpoints, log, plot and final model)" },
  eval: { type: 'string', help: 'held-out chats, evaluated every --eval-every steps and at the end' },
  'first-data': { type: 'string', help: 'a curriculum: chats for the first --first-steps steps, then --data (one schedule)' },
  'first-steps': int(1, 'optimizer steps on --first-data, counted in --steps'),
  epochs: int(1, 'passes over the data (default 1)'),
  steps: int(1, 'optimizer steps (overrides --epochs)'),
  'batch-size': int(1, 'examples per micro-batch (default 1)'),
  'grad-accum': int(1, 'micro-batches per optimizer step (default 1)'),
  lr: above(0, 'peak learning rate (default 5e-5; warmup then cosine decay to 0)'),
  'weight-decay': atLeast(0, 'AdamW decoupled weight decay, not applied to biases and norms (default 0)'),
  warmup: int(0, 'linear warmup steps (default 0)'),
  clip: atLeast(0, 'max global gradient norm (default 1; 0 = no clipping)'),
  seed: { type: 'number', integer: true, min: 0, max: 2 ** 32 - 1, help: 'seed of the data order and the LoRA init (default 42)' },
  'lora-rank': int(1, 'train LoRA adapters of this rank instead of every weight'),
  'lora-alpha': above(0, 'LoRA alpha; the adapter is scaled by alpha / rank (default 2 * rank)'),
  'lora-dropout': { type: 'number', min: 0, max: 1, maxExclusive: true, help: 'dropout on the adapter input (default 0)' },
  'lora-targets': { type: 'string', help: 'comma-separated Linear names to adapt (default q_proj,v_proj)' },
  'freeze-vision': { type: 'boolean', help: 'do not train the vision tower (model.visual.*)' },
  'vision-lr-scale': above(0, 'the vision tower\'s learning rate as a fraction of --lr (default 1)'),
  'train-vision-keys': { type: 'string', help: 'with --freeze-vision: comma-separated parts of vision weight keys that still train (e.g. position_embedding)' },
  'freeze-embeddings': { type: 'boolean', help: 'do not train the token embeddings' },
  'max-length': int(1, 'longest example in tokens, image tokens included'),
  'on-too-long': { type: 'string', choices: ['skip', 'error'], help: "what to do with a longer example: 'skip' (default, counted) or 'error'" },
  'eval-every': int(1, 'evaluate every N steps (default: at the end only)'),
  'save-every': int(1, 'write a resumable checkpoint every N steps (default: never)'),
  'save-dtype': { type: 'string', choices: ['F32', 'BF16'], help: "weights of the saved model: 'F32' (default) or 'BF16'" },
  'shard-size': int(1, 'largest safetensors shard of the saved model, in bytes (default: one file)'),
  resume: { type: 'boolean', help: 'continue from the newest checkpoint in OUT' },
  'stop-after': int(1, 'stop after N steps without saving the model, as if interrupted (continue with --resume)'),
};

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

const num = (a: Parsed, key: string) => a[key] as number | undefined;
const str = (a: Parsed, key: string) => a[key] as string | undefined;

/** Turns the parsed flags (each already checked against FLAGS) into trainer options; checks the rules between flags. */
export function finetuneOptions(a: Parsed): { model: string; data: string; eval?: string; firstData?: string; firstSteps?: number; train: TrainOptions; maxLength?: number; onTooLong: 'skip' | 'error' } {
  const rank = num(a, 'lora-rank');
  for (const k of ['lora-alpha', 'lora-dropout', 'lora-targets']) if (a[k] !== undefined && rank === undefined) throw new CliError(`--${k} needs --lora-rank`);
  if (a.resume && a.overwrite) throw new CliError('--resume and --overwrite exclude each other: --resume continues the run in --out, --overwrite replaces it');
  const clip = num(a, 'clip') ?? 1;
  const train: TrainOptions = {
    outDir: a.out as string,
    modelDir: a.model as string,
    lr: num(a, 'lr') ?? 5e-5,
    weightDecay: num(a, 'weight-decay') ?? 0,
    warmupSteps: num(a, 'warmup') ?? 0,
    maxGradNorm: clip === 0 ? Infinity : clip,
    seed: num(a, 'seed') ?? 42,
    batchSize: num(a, 'batch-size') ?? 1,
    gradAccum: num(a, 'grad-accum') ?? 1,
    freezeVision: !!a['freeze-vision'],
    freezeEmbeddings: !!a['freeze-embeddings'],
    visionLrScale: num(a, 'vision-lr-scale') ?? 1,
    evalEvery: num(a, 'eval-every') ?? 0,
    saveEvery: num(a, 'save-every') ?? 0,
    resume: !!a.resume,
    saveDtype: (str(a, 'save-dtype') as 'F32' | 'BF16' | undefined) ?? 'F32',
  };
  const epochs = num(a, 'epochs'), steps = num(a, 'steps'), shard = num(a, 'shard-size'), stop = num(a, 'stop-after');
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
    const targets = (str(a, 'lora-targets') ?? 'q_proj,v_proj').split(',').map((t) => t.trim()).filter(Boolean);
    if (targets.length === 0) throw new CliError('--lora-targets names no layer');
    train.lora = { rank, alpha: num(a, 'lora-alpha') ?? 2 * rank, dropout: num(a, 'lora-dropout') ?? 0, targets };
  }
  const maxLength = num(a, 'max-length');
  const firstSteps = num(a, 'first-steps');
  if ((firstSteps === undefined) !== (a['first-data'] === undefined)) throw new CliError('--first-data and --first-steps go together');
  if (firstSteps !== undefined && steps !== undefined && firstSteps >= steps) throw new CliError(`--first-steps (${firstSteps}) must be fewer than --steps (${steps})`);
  return {
    model: a.model as string, data: a.data as string, ...(a.eval ? { eval: a.eval as string } : {}), train,
    ...(firstSteps !== undefined ? { firstData: a['first-data'] as string, firstSteps } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}), onTooLong: (str(a, 'on-too-long') as 'skip' | 'error' | undefined) ?? 'skip',
  };
}

/**
 * Refuses an --out that would lose an earlier run: a non-empty folder needs --resume (with a checkpoint in it to
 * continue from) or --overwrite. Runs before anything is read or written.
 */
export function checkOutDir(out: string, resume: boolean, overwrite: boolean): void {
  if (!fs.existsSync(out)) return;
  if (!fs.statSync(out).isDirectory()) throw new CliError(`--out ${out} is a file, not a folder`);
  if (fs.readdirSync(out).length === 0 || overwrite) return;
  if (!resume) throw new CliError(`--out ${out} is not empty: pass --resume to continue the run in it or --overwrite to replace it`);
  if (listCheckpoints(out).length === 0) throw new CliError(`--out ${out} holds no checkpoint-N to resume from: pass --overwrite to replace what it holds, or another --out`);
}

/** --overwrite: drops the earlier run's checkpoints, so that pruning and a later --resume see only the new run's.
 * Its log is rewritten when training starts; its plot and final model stay until the new ones replace them whole. */
function dropEarlierCheckpoints(out: string): void {
  for (const step of listCheckpoints(out)) fs.rmSync(checkpointDir(out, step), { recursive: true, force: true });
}

export const command = {
  summary: 'train on chat-format JSONL and save a Hugging Face checkpoint',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, FLAGS, USAGE);
    if (!a) return;
    const o = finetuneOptions(a);
    checkOutDir(o.train.outDir, !!a.resume, !!a.overwrite);
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
      if (a.overwrite) dropEarlierCheckpoints(o.train.outDir);
      const first = firstData ? { first: { data: firstData, steps: o.firstSteps! } } : {};
      const r = await train(model, ds, trainData, evalData, { ...o.train, ...first, onProgress: (p) => process.stderr.write(progressLine(p)) });
      if (!r.savedDir) process.stdout.write(`finetune: stopped at steps=${r.steps} loss=${r.finalLoss.toFixed(6)}; continue with --resume\n`);
      else process.stdout.write(`finetune: steps=${r.steps} final_loss=${r.finalLoss.toFixed(6)} saved=${path.resolve(r.savedDir)}\n`);
    } finally {
      model.dispose();
    }
  },
};
