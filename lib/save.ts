// Saves a model as a Hugging Face checkpoint folder (what save_pretrained writes): config.json, model.safetensors or
// model-0000i-of-0000n.safetensors shards + model.safetensors.index.json, and the tokenizer / template / processor
// files copied from the source folder. LoRA adapters are merged on the fly (the model is not changed).
// The folder appears whole or not at all: everything is written to a temporary sibling, then renamed into place.
// Weights are read asynchronously, one tensor at a time (webgpu in Node has no synchronous reads).
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { Glm4vForConditionalGeneration } from '../models/glm4v/model';
import { isObject, readJson } from './config';
import { WriteTensor, writeSafetensorsAsync } from './safetensors';
import { loraLayers } from './train/lora';

/** The non-weight files of a GLM-V checkpoint folder, copied when present. */
export const CHECKPOINT_FILES = [
  'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
  'chat_template.jinja', 'chat_template.json', 'preprocessor_config.json', 'video_preprocessor_config.json',
  'processor_config.json', 'vocab.json', 'merges.txt', 'tokenizer.model',
];

export interface SaveOptions {
  /** weight dtype on disk (the model computes in float32 either way); default F32 */
  dtype?: 'F32' | 'BF16';
  /** largest shard in bytes; a model that does not fit in one is sharded with an index. Default: one file */
  shardBytes?: number;
  /** folder to copy config.json and CHECKPOINT_FILES from (usually the folder the model was loaded from) */
  copyFrom?: string;
  /** names of files to copy instead of CHECKPOINT_FILES; each must exist in copyFrom */
  files?: string[];
}

interface Entry {
  key: string;
  shape: number[];
  produce: () => Promise<WriteTensor>;
}

const BYTES = { F32: 4, BF16: 2 } as const;

// After a read these backends keep a host copy of the values on the tensor for as long as it lives.
const CACHES_READS = new Set(['webgpu', 'webgl']);

/** Reads a float32 tensor that the caller owns, then disposes it. */
async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/**
 * The values of a float32 tensor that lives on (a parameter, optimizer state), read asynchronously. Where a read would
 * leave a host copy on the tensor (webgpu), a one-off device copy is read instead, so that saving a model does not
 * end with every weight duplicated in host memory. x * 1 is x bit for bit (signed zeros, infinities and NaNs too).
 */
export async function readFloat32(t: tf.Tensor): Promise<Float32Array> {
  if (t.dtype !== 'float32') throw new Error(`readFloat32: expected a float32 tensor, got ${t.dtype} ${JSON.stringify(t.shape)}`);
  if (!CACHES_READS.has(tf.getBackend())) return (await t.data()) as Float32Array;
  return readAndDispose(tf.tidy(() => tf.mul(t, tf.scalar(1))));
}

/**
 * One producer per checkpoint tensor: adapters dropped, adapted weights merged (W + scale B A). A tied parameter is
 * written once, under its first name (embed_tokens, not lm_head), as transformers' save_pretrained.
 */
function checkpointEntries(model: Glm4vForConditionalGeneration, dtype: 'F32' | 'BF16'): Entry[] {
  const merged = new Map([...loraLayers(model)].map(([p, lora]) => [`${p}.weight`, lora]));
  const entries: Entry[] = [];
  for (const [key, p] of model.namedParams()) {
    if (/\.lora_[AB]\.weight$/.test(key)) continue;
    const lora = merged.get(key);
    entries.push({
      key,
      shape: p.shape,
      produce: async () => ({ dtype, shape: p.shape, data: await (lora ? readAndDispose(lora.mergedWeight()) : readFloat32(p.value)) }),
    });
  }
  return entries;
}

/** Greedy shards in key order, each under `shardBytes` (a tensor larger than that gets a shard of its own). */
function shard(entries: Entry[], dtype: 'F32' | 'BF16', shardBytes: number): Entry[][] {
  const shards: Entry[][] = [[]];
  let bytes = 0;
  for (const e of entries) {
    const n = e.shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    if (bytes > 0 && bytes + n > shardBytes) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1]!.push(e);
    bytes += n;
  }
  return shards;
}

/**
 * config.json with `dtype` (and the older `torch_dtype`, when present) saying what the weights are stored in, and
 * `tie_word_embeddings` true when the model is tied.
 */
function configJson(model: Glm4vForConditionalGeneration, copyFrom: string | undefined, dtype: 'F32' | 'BF16'): string {
  const src = copyFrom && fs.existsSync(path.join(copyFrom, 'config.json')) ? readJson(path.join(copyFrom, 'config.json')) : model.config.raw;
  if (!isObject(src)) throw new Error('config.json: expected a JSON object');
  const name = dtype === 'BF16' ? 'bfloat16' : 'float32';
  const out: Record<string, unknown> = { ...src, dtype: name };
  // the file has no lm_head.weight: the config must say where it comes from, at the top level as transformers writes it
  if (model.tiedParams().size) out.tie_word_embeddings = true;
  if ('torch_dtype' in out) out.torch_dtype = name;
  return JSON.stringify(out, null, 2) + '\n';
}

/** Writes the files of the checkpoint into `dir`, which must exist and be empty. */
async function writeCheckpointFiles(model: Glm4vForConditionalGeneration, dir: string, opts: SaveOptions): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const entries = checkpointEntries(model, dtype);
  const metadata = { format: 'pt' }; // transformers refuses safetensors files without format pt/tf/flax/mlx
  const write = (file: string, es: Entry[]) =>
    writeSafetensorsAsync(
      path.join(dir, file),
      es.map((e) => [e.key, e.produce] as [string, () => Promise<WriteTensor>]),
      metadata,
      new Map(es.map((e) => [e.key, { dtype, shape: e.shape }])),
    );
  const shards = opts.shardBytes ? shard(entries, dtype, opts.shardBytes) : [entries];
  if (shards.length === 1) await write('model.safetensors', entries);
  else {
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (const [i, es] of shards.entries()) {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      await write(file, es);
      for (const e of es) {
        weightMap[e.key] = file;
        total += e.shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
      }
    }
    const sorted = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]!]));
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2) + '\n');
  }
  fs.writeFileSync(path.join(dir, 'config.json'), configJson(model, opts.copyFrom, dtype));
  const files = opts.files ?? CHECKPOINT_FILES.filter((f) => opts.copyFrom && fs.existsSync(path.join(opts.copyFrom, f)));
  for (const f of files) {
    if (!opts.copyFrom) throw new Error(`cannot copy ${f}: no copyFrom folder given`);
    const src = path.join(opts.copyFrom, f);
    if (!fs.existsSync(src)) throw new Error(`${src}: not found (asked to copy ${f} into the checkpoint)`);
    fs.copyFileSync(src, path.join(dir, f));
  }
}

/**
 * Replaces `dir` with a freshly written folder, never leaving a half-written one: `write` fills a temporary sibling,
 * which is renamed into place only once complete; a failure removes it and leaves any previous `dir` as it was.
 */
export async function writeFolderAtomically(dir: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(path.resolve(dir));
  fs.mkdirSync(parent, { recursive: true });
  const stamp = `${process.pid}-${Date.now()}`;
  const tmp = path.join(parent, `.${path.basename(dir)}.tmp-${stamp}`);
  fs.mkdirSync(tmp);
  try {
    await write(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (!fs.existsSync(dir)) {
    fs.renameSync(tmp, dir);
    return;
  }
  // Two renames: between them the complete old folder sits at `old` and the complete new one at `tmp`.
  const old = path.join(parent, `.${path.basename(dir)}.old-${stamp}`);
  fs.renameSync(dir, old);
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/**
 * Saves `model` to `dir` in Hugging Face layout, one tensor in memory at a time, atomically (see
 * writeFolderAtomically). LoRA layers are saved merged, under the base checkpoint keys. The model must not be
 * changed until the returned promise settles.
 */
export async function saveCheckpoint(model: Glm4vForConditionalGeneration, dir: string, opts: SaveOptions = {}): Promise<void> {
  if (opts.shardBytes !== undefined && !(opts.shardBytes > 0)) throw new Error(`shardBytes must be > 0, got ${opts.shardBytes}`);
  await writeFolderAtomically(dir, (tmp) => writeCheckpointFiles(model, tmp, opts));
}
