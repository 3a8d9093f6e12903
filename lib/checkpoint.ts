// Hugging Face checkpoint folders: model.safetensors or sharded through model.safetensors.index.json.
// Weights are read one tensor at a time and copied straight into the module's parameters.
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { files } from './byte_source';
import { tfBf16Tensor } from './kernels/tf_bf16';
import { brief, ConfigError, isObject, readJson } from './config';
import type { Module } from './module';
import { HostTensor, ReadScratch, SafetensorsFile, TensorInfo } from './safetensors';

export class WeightLoadError extends Error {
  override name = 'WeightLoadError';
}

/** Lazy access to the tensors of a checkpoint folder (or of one .safetensors file). */
export class CheckpointReader {
  private readonly files = new Map<string, SafetensorsFile>();
  private readonly where = new Map<string, string>();
  private readonly scratch = new ReadScratch();

  constructor(readonly location: string) {
    if (!files().exists(location)) throw new WeightLoadError(`${location}: no such file or folder`);
    if (files().isFile(location)) {
      this.index(location);
      return;
    }
    const indexFile = path.join(location, 'model.safetensors.index.json');
    const single = path.join(location, 'model.safetensors');
    if (files().exists(indexFile)) {
      try {
        this.indexShards(location, indexFile);
      } catch (e) {
        this.close(); // the shards opened before the one that failed
        throw e;
      }
    } else if (files().exists(single)) {
      this.index(single);
    } else {
      throw new WeightLoadError(`${location}: no model.safetensors or model.safetensors.index.json`);
    }
  }

  private indexShards(location: string, indexFile: string): void {
    const idx = readJson(indexFile);
    if (!isObject(idx) || !isObject(idx.weight_map)) throw new ConfigError(`${indexFile}: weight_map: expected an object`);
    const map = Object.entries(idx.weight_map);
    const bad = map.find(([, shard]) => typeof shard !== 'string' || shard === '');
    if (bad) throw new ConfigError(`${indexFile}: weight_map.${brief(bad[0], 80)}: expected a shard file name, got ${brief(bad[1])}`);
    for (const shard of new Set(map.map(([, s]) => s as string))) {
      const f = path.join(location, shard);
      if (!files().exists(f)) throw new WeightLoadError(`${indexFile}: shard ${brief(shard)} is missing`);
      this.index(f);
    }
    for (const [k, shard] of map) {
      if (this.where.get(k) !== path.join(location, shard as string)) {
        throw new WeightLoadError(`${indexFile}: ${brief(k, 80)} is mapped to ${brief(shard)}, which does not hold it`);
      }
    }
  }

  private index(file: string): void {
    const f = new SafetensorsFile(file);
    this.files.set(file, f);
    for (const k of f.keys()) {
      if (this.where.has(k)) throw new WeightLoadError(`'${k}' appears in both ${this.where.get(k)} and ${file}`);
      this.where.set(k, file);
    }
  }

  keys(): string[] {
    return [...this.where.keys()];
  }

  has(key: string): boolean {
    return this.where.has(key);
  }

  info(key: string): TensorInfo {
    return this.file(key).info(key);
  }

  read(key: string): HostTensor {
    return this.file(key).read(key);
  }

  /** One tensor as a tf.Tensor (the caller disposes it). */
  tensor(key: string): tf.Tensor {
    // The native backend converts bf16 itself, from the raw bytes read into the reused buffer (lib/kernels/tf_bf16.ts).
    const info = this.file(key).info(key);
    const f = this.file(key);
    const native = info.dtype === 'BF16' ? tfBf16Tensor(info.shape, (offset, length) => f.readBytes(key, this.scratch, offset, length)) : undefined;
    if (native) return native;
    // The wasm backend copies a new tensor's values into its heap at once, so one pair of host buffers serves every
    // tensor and a load leaves no garbage for the GC to catch up with; other backends may keep the array (cpu does).
    const h = tf.getBackend() === 'wasm' ? this.file(key).read(key, this.scratch) : this.read(key);
    return tf.tensor(h.data, h.shape, h.dtype);
  }

  private file(key: string): SafetensorsFile {
    const f = this.where.get(key);
    if (!f) throw new WeightLoadError(`${this.location}: no tensor '${key}'`);
    return this.files.get(f)!;
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

function listKeys(title: string, keys: string[]): string {
  const shown = keys.slice(0, 10).join(', ');
  return `${title} (${keys.length}): ${shown}${keys.length > 10 ? `, ... and ${keys.length - 10} more` : ''}`;
}

export interface LoadOptions {
  /** Error on unexpected keys (missing and wrong-shaped keys are always errors). Default true. */
  strict?: boolean;
  /** Only checkpoint keys under this prefix are considered, with the prefix removed ('model.language_model.'). */
  prefix?: string;
  /** Checkpoint keys to skip silently (non-persistent buffers such as rotary inv_freq). */
  ignore?: (key: string) => boolean;
  /** Where a warning goes (a tie the checkpoint contradicts); default stderr. */
  warn?: (line: string) => void;
}

/** Whether two checkpoint tensors hold the same shape and values (torch.equal: a NaN equals nothing). */
function sameTensor(reader: CheckpointReader, a: string, b: string): boolean {
  const [x, y] = [reader.read(a), reader.read(b)];
  if (!tf.util.arraysEqual(x.shape, y.shape)) return false;
  for (let i = 0; i < x.data.length; i++) if (x.data[i] !== y.data[i]) return false;
  return true;
}

/**
 * Resolves the model's tied parameters against the checkpoint's keys as transformers' tie_weights does on load:
 * the alias absent (how a tied model is saved) loads the source; only the alias present loads the source from it;
 * both present and equal, the alias key is consumed; both present and different, the two are untied, with a warning.
 */
function resolveTies(model: Module, reader: CheckpointReader, available: Map<string, string>, prefix: string, warn: (line: string) => void): void {
  for (const [alias, source] of model.tiedParams()) {
    const [a, s] = [available.get(alias), available.get(source)];
    if (a === undefined) continue;
    available.delete(alias);
    if (s === undefined) available.set(source, a);
    else if (!sameTensor(reader, a, s)) {
      model.untie(alias);
      available.set(alias, a);
      warn(`${reader.location}: ${prefix + alias} is tied to ${prefix + source} (tie_word_embeddings), but the checkpoint holds both with different values: loading them untied, as transformers does`);
    }
  }
}

/**
 * Loads every parameter of `model` from `reader`, checking the whole key set and every shape first.
 * Errors list the missing, unexpected and wrong-shaped keys. A tied parameter is loaded once (see resolveTies).
 */
export function loadWeights(model: Module, reader: CheckpointReader, opts: LoadOptions = {}): void {
  const strict = opts.strict ?? true;
  const prefix = opts.prefix ?? '';
  const available = new Map<string, string>();
  for (const k of reader.keys()) {
    if (!k.startsWith(prefix)) continue;
    const local = k.slice(prefix.length);
    if (opts.ignore?.(local)) continue;
    available.set(local, k);
  }
  resolveTies(model, reader, available, prefix, opts.warn ?? ((line) => process.stderr.write(`glm46v: ${line}\n`)));
  const params = model.namedParams();
  const missing = [...params.keys()].filter((k) => !available.has(k));
  const unexpected = [...available.keys()].filter((k) => !params.has(k));
  const wrongShape: string[] = [];
  for (const [k, p] of params) {
    const src = available.get(k);
    if (src === undefined) continue;
    const shape = reader.info(src).shape;
    if (!tf.util.arraysEqual(shape, p.shape)) wrongShape.push(`${src}: expected ${JSON.stringify(p.shape)}, got ${JSON.stringify(shape)}`);
  }
  const problems: string[] = [];
  if (missing.length) problems.push(listKeys('Missing parameters', missing.map((k) => prefix + k)));
  if (strict && unexpected.length) problems.push(listKeys('Received parameters not in model', unexpected.map((k) => prefix + k)));
  if (wrongShape.length) problems.push(listKeys('Wrong shapes', wrongShape));
  if (problems.length) throw new WeightLoadError(`${reader.location}: ${problems.join('; ')}`);
  for (const [k, p] of params) {
    const t = reader.tensor(available.get(k)!);
    p.set(t);
    t.dispose();
  }
}

/**
 * Opens the checkpoint at `dir` (or takes `reader`, e.g. one that lays out experts), loads it into `model` and closes
 * it; on failure the model's parameters are released.
 */
export function loadCheckpoint<T extends Module>(model: T, source: string | CheckpointReader, opts: LoadOptions = {}): T {
  const reader = typeof source === 'string' ? new CheckpointReader(source) : source;
  try {
    loadWeights(model, reader, opts);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    reader.close();
  }
}
