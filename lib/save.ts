// Saves a model as a Hugging Face checkpoint folder (what save_pretrained writes): config.json, model.safetensors or
// model-0000i-of-0000n.safetensors shards + model.safetensors.index.json, and the tokenizer / template / processor
// files copied from the source folder. LoRA adapters are merged on the fly (the model is not changed).
// The folder appears whole or not at all: everything is written to a temporary sibling, then renamed into place.
// Weights are read asynchronously, one tensor at a time (webgpu in Node has no synchronous reads).
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { isObject, readJson } from './config';
import type { Module } from './module';
import { WriteTensor, writeSafetensorsAsync } from './safetensors';

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

/**
 * One tensor of the checkpoint being written: its key, shape and a reader of its float32 values. `keepFloat32`: written
 * F32 even in a BF16 save (transformers' _keep_in_fp32_modules_strict keeps such tensors float32 in memory and on disk).
 */
export interface SaveTensor {
  key: string;
  shape: number[];
  read: () => Promise<Float32Array>;
  keepFloat32?: boolean;
}

/**
 * A module whose checkpoint tensors are not its parameters one for one (the inverse of a load-time key rule: fused
 * tensors, float32-only tensors). Saving hands it the tensors under its prefix, in order, and writes what it returns
 * in their place. Found by duck typing on every module of the tree, so lib/ stays free of model semantics.
 */
export interface SavesOwnTensors {
  checkpointTensors(prefix: string, tensors: SaveTensor[]): SaveTensor[];
}

const savesOwnTensors = (m: unknown): m is SavesOwnTensors => typeof (m as Partial<SavesOwnTensors>).checkpointTensors === 'function';

interface Entry {
  key: string;
  shape: number[];
  dtype: 'F32' | 'BF16';
  produce: () => Promise<WriteTensor>;
}

const BYTES = { F32: 4, BF16: 2 } as const;
const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

// After a read these backends keep a host copy of the values on the tensor for as long as it lives.
const CACHES_READS = new Set(['webgpu', 'webgl']);

/** Reads a float32 tensor that the caller owns, then disposes it. */
export async function readAndDispose(t: tf.Tensor): Promise<Float32Array> {
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

/** What saving needs of a model: its parameters and modules, and the config it was built from (`raw`). */
export type SavableModel = Module & { readonly config: { readonly raw: unknown } };

/**
 * The checkpoint's tensors: every parameter, then each module that saves its own tensors (SavesOwnTensors: LoRA
 * layers write their merged weight and drop the adapters; fused MoE experts) rewrites those under its prefix. A tied parameter is written once, under its first
 * name (embed_tokens, not lm_head), as transformers' save_pretrained.
 */
export function checkpointTensors(model: SavableModel): SaveTensor[] {
  let tensors: SaveTensor[] = [...model.namedParams()].map(([key, p]) => ({ key, shape: p.shape, read: () => readFloat32(p.value) }));
  // the deepest modules first: a LoRA layer inside fused experts gives its merged weight before they fuse it
  const depth = (prefix: string) => (prefix === '' ? 0 : prefix.split('.').length);
  for (const [prefix, m] of [...model.namedModules()].sort((a, b) => depth(b[0]) - depth(a[0]))) {
    if (!savesOwnTensors(m)) continue;
    const under = (t: SaveTensor) => prefix === '' || t.key.startsWith(`${prefix}.`);
    const at = tensors.findIndex(under);
    if (at < 0) continue;
    const rest = tensors.filter((t) => !under(t));
    tensors = [...rest.slice(0, at), ...m.checkpointTensors(prefix, tensors.filter(under)), ...rest.slice(at)];
  }
  return tensors;
}

function checkpointEntries(model: SavableModel, dtype: 'F32' | 'BF16'): Entry[] {
  return checkpointTensors(model).map((t) => {
    const d = t.keepFloat32 ? 'F32' : dtype;
    return { key: t.key, shape: t.shape, dtype: d, produce: async () => ({ dtype: d, shape: t.shape, data: await t.read() }) };
  });
}

/** Greedy shards in key order, each under `shardBytes` (a tensor larger than that gets a shard of its own). */
function shard(entries: Entry[], shardBytes: number): Entry[][] {
  const shards: Entry[][] = [[]];
  let bytes = 0;
  for (const e of entries) {
    const n = numel(e.shape) * BYTES[e.dtype];
    if (bytes > 0 && bytes + n > shardBytes) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1]!.push(e);
    bytes += n;
  }
  return shards;
}

// A float literal with an integral value (`1.0`) survives a JSON round trip in JS only as a marked string: transformers'
// strict config fields refuse the int `1` where they declare float (Glm4vMoeTextConfig.routed_scaling_factor).
const FLOAT_MARK = '\u0000float:';
const LITERALS = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/** JSON.parse, with every integral float literal (`1.0`, `1e3`) kept as its text behind FLOAT_MARK. */
function parseKeepingFloats(text: string): unknown {
  return JSON.parse(text.replace(LITERALS, (t) => (t[0] !== '"' && /[.eE]/.test(t) && Number.isInteger(Number(t)) ? JSON.stringify(FLOAT_MARK + t) : t)));
}

/** JSON.stringify (2-space indent) writing the marked literals back as they were read. */
function stringifyKeepingFloats(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/"\\u0000float:([^"]*)"/g, '$1'); // JSON.stringify escapes the NUL as \u0000
}

/**
 * config.json with `dtype` (and the older `torch_dtype`, when present) saying what the weights are stored in, and
 * `tie_word_embeddings` true when the model is tied. Copied from `copyFrom` with its float literals intact.
 */
function configJson(model: SavableModel, copyFrom: string | undefined, dtype: 'F32' | 'BF16'): string {
  const file = copyFrom && path.join(copyFrom, 'config.json');
  let src: unknown = model.config.raw;
  if (file && fs.existsSync(file)) {
    readJson(file); // its one-line errors for a bad file
    src = parseKeepingFloats(fs.readFileSync(file, 'utf8'));
  }
  if (!isObject(src)) throw new Error('config.json: expected a JSON object');
  const name = dtype === 'BF16' ? 'bfloat16' : 'float32';
  const out: Record<string, unknown> = { ...src, dtype: name };
  // the file has no lm_head.weight: the config must say where it comes from, at the top level as transformers writes it
  if (model.tiedParams().size) out.tie_word_embeddings = true;
  if ('torch_dtype' in out) out.torch_dtype = name;
  return stringifyKeepingFloats(out) + '\n';
}

/** Writes the files of the checkpoint into `dir`, which must exist and be empty. */
async function writeCheckpointFiles(model: SavableModel, dir: string, opts: SaveOptions): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  const entries = checkpointEntries(model, dtype);
  const metadata = { format: 'pt' }; // transformers refuses safetensors files without format pt/tf/flax/mlx
  const write = (file: string, es: Entry[]) =>
    writeSafetensorsAsync(
      path.join(dir, file),
      es.map((e) => [e.key, e.produce] as [string, () => Promise<WriteTensor>]),
      metadata,
      new Map(es.map((e) => [e.key, { dtype: e.dtype, shape: e.shape }])),
    );
  const shards = opts.shardBytes ? shard(entries, opts.shardBytes) : [entries];
  if (shards.length === 1) await write('model.safetensors', entries);
  else {
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (const [i, es] of shards.entries()) {
      const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      await write(file, es);
      for (const e of es) {
        weightMap[e.key] = file;
        total += numel(e.shape) * BYTES[e.dtype];
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
export async function saveCheckpoint(model: SavableModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  if (opts.shardBytes !== undefined && !(opts.shardBytes > 0)) throw new Error(`shardBytes must be > 0, got ${opts.shardBytes}`);
  await writeFolderAtomically(dir, (tmp) => writeCheckpointFiles(model, tmp, opts));
}
