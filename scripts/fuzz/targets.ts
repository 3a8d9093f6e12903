// What the fuzzer feeds and calls: per format, the committed seed files, the format's own mutations and the reader
// that must end each input in a valid result or a named, one-line error.
import * as fs from 'fs';
import * as path from 'path';
import { CheckpointReader, WeightLoadError } from '../../lib/checkpoint';
import { ConfigError } from '../../lib/config';
import { SafetensorsError } from '../../lib/safetensors';
import { readGlm4vConfig } from '../../models/glm4v/config';
import { ProcessorError } from '../../processors/errors';
import { decodeImage, MAX_IMAGE_PIXELS } from '../../processors/image_io';
import { Glm46VImageProcessor } from '../../processors/image_processor';
import { inputRng, JPEG_MUTATIONS, JSON_MUTATIONS, mutate, PNG_MUTATIONS, randInt, Rng, SAFETENSORS_MUTATIONS } from './mutate';

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(ROOT, 'spec', 'fixtures');

export const FORMATS = ['png', 'jpeg', 'jpeg-progressive', 'safetensors', 'safetensors-index', 'config'] as const;
export type Format = (typeof FORMATS)[number];

export interface Seed {
  file: string;
  bytes: Uint8Array;
}

interface Target {
  seeds: string[];
  mutations: Array<(r: Rng, b: Uint8Array) => Uint8Array>;
  /** Runs the reader on `bytes`, written under `dir` where it reads files; returns a description of a valid result. */
  run(bytes: Uint8Array, dir: string, seed: string): string;
}

const images = (exts: string[], except: string[] = []) => [path.join(FIXTURES, 'images'), path.join(ROOT, 'assets', 'examples')]
  .flatMap((d) => fs.readdirSync(d).filter((f) => exts.includes(path.extname(f)) && !except.includes(f)).sort().map((f) => path.join(d, f)));

/** The bytes of an image, checked against the bound the decoder promises. */
function runImage(bytes: Uint8Array, name: string): string {
  const img = decodeImage(bytes, name);
  const n = img.width * img.height;
  if (!(Number.isInteger(img.width) && Number.isInteger(img.height) && n > 0) || img.data.length !== n * 3) {
    throw new Error(`invalid result: ${img.width}x${img.height} with ${img.data.length} bytes`);
  }
  if (n > MAX_IMAGE_PIXELS) throw new Error(`invalid result: ${img.width}x${img.height} passes MAX_IMAGE_PIXELS`);
  return `${img.width}x${img.height}`;
}

/** A safetensors file (or a sharded folder) opened as the model loader does, every tensor read. */
function readCheckpoint(location: string): string {
  const reader = new CheckpointReader(location);
  try {
    let bytes = 0;
    for (const k of reader.keys()) bytes += reader.read(k).data.byteLength;
    return `${reader.keys().length} tensors, ${bytes} bytes`;
  } finally {
    reader.close();
  }
}

const SHARDED = path.join(FIXTURES, 'train', 'saved', 'full_f32_sharded');

const TARGETS: Record<Format, Target> = {
  png: {
    seeds: images(['.png']),
    mutations: PNG_MUTATIONS,
    run: (bytes, dir) => runImage(bytes, path.join(dir, 'input.png')),
  },
  jpeg: {
    seeds: images(['.jpg'], ['progressive.jpg']),
    mutations: JPEG_MUTATIONS,
    run: (bytes, dir) => runImage(bytes, path.join(dir, 'input.jpg')),
  },
  'jpeg-progressive': {
    seeds: [path.join(FIXTURES, 'images', 'progressive.jpg')],
    mutations: JPEG_MUTATIONS,
    run: (bytes, dir) => runImage(bytes, path.join(dir, 'input.jpg')),
  },
  safetensors: {
    // the four smallest committed safetensors files: reference tensors of every dtype the fixtures use
    seeds: ['model/gen_text', 'rope/text_only', 'processor/chat_text', 'rope/one_image'].map((f) => path.join(FIXTURES, `${f}.safetensors`)),
    mutations: SAFETENSORS_MUTATIONS,
    run: (bytes, dir) => {
      const file = path.join(dir, 'model.safetensors');
      fs.writeFileSync(file, bytes);
      return readCheckpoint(file);
    },
  },
  'safetensors-index': {
    seeds: [path.join(SHARDED, 'model.safetensors.index.json')],
    mutations: JSON_MUTATIONS,
    run: (bytes, dir) => {
      const sharded = path.join(dir, 'sharded');
      if (!fs.existsSync(sharded)) {
        fs.mkdirSync(sharded);
        for (const f of fs.readdirSync(SHARDED)) if (f.endsWith('.safetensors')) fs.symlinkSync(path.join(SHARDED, f), path.join(sharded, f));
      }
      fs.writeFileSync(path.join(sharded, 'model.safetensors.index.json'), bytes);
      const reader = new CheckpointReader(sharded);
      reader.close();
      return `${reader.keys().length} tensors`;
    },
  },
  config: {
    seeds: [path.join(ROOT, 'assets', 'model'), path.join(FIXTURES, 'models', 'tiny_a'), path.join(FIXTURES, 'models', 'tiny_b'),
      path.join(FIXTURES, 'glm-configs', 'GLM-4.1V-9B-Thinking')].flatMap((d) => ['config.json', 'preprocessor_config.json']
      .map((f) => path.join(d, f))).filter((f) => fs.existsSync(f)),
    mutations: JSON_MUTATIONS,
    run: (bytes, dir, seed) => {
      const kind = path.basename(seed);
      fs.writeFileSync(path.join(dir, kind), bytes);
      if (kind === 'config.json') return `text hidden_size ${readGlm4vConfig(dir).text_config.hidden_size}`;
      return `patch_size ${Glm46VImageProcessor.fromPretrained(dir).config.patch_size}`;
    },
  },
};

const seedCache = new Map<Format, Seed[]>();

export function seedsOf(format: Format): Seed[] {
  let seeds = seedCache.get(format);
  if (!seeds) {
    seeds = TARGETS[format].seeds.map((file) => ({ file, bytes: new Uint8Array(fs.readFileSync(file)) }));
    seedCache.set(format, seeds);
  }
  return seeds;
}

/** Input `index` of a run: its format (round robin), the seed file it came from, and its bytes. */
export function makeInput(seed: number, index: number, formats: readonly Format[]): { format: Format; seedFile: string; bytes: Uint8Array } {
  const format = formats[index % formats.length]!;
  const r = inputRng(seed, index);
  const seeds = seedsOf(format);
  const s = seeds[randInt(r, seeds.length)]!;
  return { format, seedFile: s.file, bytes: mutate(r, s.bytes, TARGETS[format].mutations) };
}

export type Outcome = 'valid' | 'error' | 'crash' | 'hang' | 'memory';

export interface Result {
  outcome: Outcome;
  /** the valid result, or the error's first line (name: message) */
  detail: string;
  ms: number;
}

const NAMED = [ProcessorError, SafetensorsError, ConfigError, WeightLoadError];
export const MAX_MESSAGE = 400;

/**
 * Runs one input. A named error is one of the package's error classes, one line of at most MAX_MESSAGE characters,
 * naming the file it read; anything else thrown (TypeError, RangeError, a non-Error) is a crash.
 */
export function runInput(format: Format, bytes: Uint8Array, dir: string, seedFile: string): Result {
  const t0 = performance.now();
  try {
    const detail = TARGETS[format].run(bytes, dir, seedFile);
    return { outcome: 'valid', detail, ms: performance.now() - t0 };
  } catch (e) {
    const ms = performance.now() - t0;
    if (!(e instanceof Error)) return { outcome: 'crash', detail: `non-Error thrown: ${String(e).slice(0, 200)}`, ms };
    const first = `${e.name}: ${e.message.split('\n')[0]!.slice(0, MAX_MESSAGE)}`;
    const named = NAMED.some((C) => e instanceof C) && !e.message.includes('\n') && e.message.length <= MAX_MESSAGE && e.message.includes(dir);
    if (named) return { outcome: 'error', detail: first, ms };
    const where = e.stack?.split('\n').find((l) => l.includes('at '))?.trim() ?? '';
    return { outcome: 'crash', detail: `${first} ${where}`.slice(0, 600), ms };
  }
}
