// Port of transformers/models/glm4v/image_processing_glm4v.py (Glm4vImageProcessor) and its generated twin
// models/glm46v/image_processing_glm46v.py (Glm46VImageProcessor): the torchvision backend, which is what
// AutoImageProcessor.from_pretrained builds by default in transformers 5.24. Host arrays only, no tensors.
// (The PIL backend, Glm4vImageProcessorPil, resizes with Pillow's 22-bit weights and normalizes in float64:
// within one 8-bit level and ~1e-7 of this.)
import * as path from 'path';
import { bool, brief, ConfigError, int, isObject, Json, num, readJson } from '../lib/config';
import { MAX_IMAGE_PIXELS, ProcessorError } from './errors';
import type { RgbImage } from './image_io';
import { resizeBicubicAntialias } from './resize';
import { smartResize } from './smart_resize';

export const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
const BICUBIC = 3; // PILImageResampling.BICUBIC, the only resample the GLM-V processors use
const KNOWN_TYPES = ['Glm4vImageProcessor', 'Glm4vImageProcessorFast', 'Glm4vImageProcessorPil',
  'Glm46VImageProcessor', 'Glm46VImageProcessorFast', 'Glm46VImageProcessorPil'];

/** The keys the image and video processor configs share, verbatim, with the HF class defaults applied. */
export interface VisualProcessorFields {
  do_resize: boolean;
  /** pixel AREAS, not edge lengths: shortest_edge = min_pixels, longest_edge = max_pixels (of t*h*w) */
  size: { shortest_edge: number; longest_edge: number };
  resample: number;
  do_rescale: boolean;
  rescale_factor: number;
  do_normalize: boolean;
  image_mean: [number, number, number];
  image_std: [number, number, number];
  /** decoded images are always RGB already (image_io.ts), so this changes nothing here */
  do_convert_rgb: boolean;
  patch_size: number;
  temporal_patch_size: number;
  merge_size: number;
  /** the whole parsed file, unknown keys included */
  raw: Json;
}

/** preprocessor_config.json */
export interface Glm4vImageProcessorConfig extends VisualProcessorFields {
  image_processor_type: string | undefined;
}

function triple(o: Json, at: string, key: string, def: [number, number, number]): [number, number, number] {
  const v = o[key] ?? def;
  if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new ConfigError(`${at}${key}: expected 3 numbers (one per RGB channel), got ${brief(o[key])}`);
  }
  return v as [number, number, number];
}

/**
 * Reads and checks the shared keys; `<kind>_processor_type` must name one of
 * `knownTypes` when present; `maxPixels` is the class default of size.longest_edge. Errors name `at` + the key.
 */
export function parseVisualProcessorFields(json: unknown, at: string, kind: 'image' | 'video', knownTypes: string[], maxPixels: number): VisualProcessorFields {
  const typeKey = `${kind}_processor_type`;
  if (!isObject(json)) throw new ConfigError(`${at}: expected a JSON object`);
  const type = json[typeKey];
  if (type !== undefined && !knownTypes.includes(type as string)) {
    throw new ConfigError(`${at}${typeKey}: ${brief(type)} is not a GLM-V ${kind} processor (${knownTypes.join(', ')})`);
  }
  const size = json.size ?? { shortest_edge: 112 * 112, longest_edge: maxPixels };
  if (!isObject(size) || !size.shortest_edge || !size.longest_edge) {
    throw new ConfigError(`${at}size: must contain 'shortest_edge' and 'longest_edge' keys but got ${brief(size)}`);
  }
  const cfg: VisualProcessorFields = {
    do_resize: bool(json, at, 'do_resize', true),
    size: { shortest_edge: int(size, `${at}size.`, 'shortest_edge'), longest_edge: int(size, `${at}size.`, 'longest_edge') },
    resample: int(json, at, 'resample', BICUBIC),
    do_rescale: bool(json, at, 'do_rescale', true),
    rescale_factor: num(json, at, 'rescale_factor', 1 / 255),
    do_normalize: bool(json, at, 'do_normalize', true),
    image_mean: triple(json, at, 'image_mean', OPENAI_CLIP_MEAN),
    image_std: triple(json, at, 'image_std', OPENAI_CLIP_STD),
    do_convert_rgb: bool(json, at, 'do_convert_rgb', true),
    patch_size: int(json, at, 'patch_size', 14, 1),
    temporal_patch_size: int(json, at, 'temporal_patch_size', 2, 1),
    merge_size: int(json, at, 'merge_size', 2, 1),
    raw: json,
  };
  if (cfg.resample !== BICUBIC) throw new ConfigError(`${at}resample: only BICUBIC (3) is implemented, got ${cfg.resample}`);
  if (cfg.image_std.some((s) => s === 0)) throw new ConfigError(`${at}image_std: has a zero, got ${brief(cfg.image_std)}`);
  return cfg;
}

/** Applies the Glm4vImageProcessor class defaults and checks the values; errors name `at` + the key. */
export function parseImageProcessorConfig(json: unknown, at = ''): Glm4vImageProcessorConfig {
  const cfg = parseVisualProcessorFields(json, at, 'image', KNOWN_TYPES, 28 * 28 * 15000);
  return { ...cfg, image_processor_type: cfg.raw.image_processor_type as string | undefined };
}

/**
 * uint8 value -> processed float32 value, one 256-entry table per channel. It reproduces the torchvision
 * backend's arithmetic exactly: rescale and normalize fused into (x - mean*255) / (std*255) in float32
 * (mean and std are float32 tensors first), or x * rescale_factor, or (x - mean) / std, or x.
 */
export function pixelTables(cfg: Pick<Glm4vImageProcessorConfig, 'do_rescale' | 'rescale_factor' | 'do_normalize' | 'image_mean' | 'image_std'>): Float32Array[] {
  const f = Math.fround;
  return [0, 1, 2].map((c) => {
    const t = new Float32Array(256);
    const inv = f(1 / cfg.rescale_factor);
    const mean = cfg.do_rescale ? f(f(cfg.image_mean[c]!) * inv) : f(cfg.image_mean[c]!);
    const std = cfg.do_rescale ? f(f(cfg.image_std[c]!) * inv) : f(cfg.image_std[c]!);
    const scale = f(cfg.rescale_factor);
    for (let v = 0; v < 256; v++) {
      if (cfg.do_normalize) t[v] = f(f(v - mean) / std);
      else t[v] = cfg.do_rescale ? v * scale : v;
    }
    return t;
  });
}

/** Interleaved uint8 RGB -> planar float32 [C, H, W] through the per-channel tables of pixelTables. */
export function toChannelsFirst(img: RgbImage, tables: Float32Array[]): Float32Array {
  const n = img.width * img.height, out = new Float32Array(3 * n), src = img.data;
  const [t0, t1, t2] = tables as [Float32Array, Float32Array, Float32Array];
  for (let i = 0, s = 0; i < n; i++, s += 3) {
    out[i] = t0[src[s]!]!;
    out[n + i] = t1[src[s + 1]!]!;
    out[2 * n + i] = t2[src[s + 2]!]!;
  }
  return out;
}

export interface PatchifyOptions {
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
}

export interface Patches {
  /** [gridT * gridH * gridW, C * temporalPatchSize * patchSize * patchSize], row-major */
  data: Float32Array;
  gridT: number;
  gridH: number;
  gridW: number;
}

/** The patch rows of several images (or videos) one after another: one [rows, cols] float32 block. */
export function stackPatchRows(parts: Float32Array[], cols: number): { data: Float32Array; shape: [number, number] } {
  const total = parts.reduce((a, p) => a + p.length, 0);
  const data = new Float32Array(total);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return { data, shape: [total / cols, cols] };
}

/**
 * Frames [C, H, W] (their count a multiple of temporalPatchSize) -> rows of flattened patches, in HF's order.
 * HF writes it as one 9-D view and permute (T = temporalPatchSize, P = patchSize, m = mergeSize):
 *
 *   x.reshape(gridT, T, C, gridH/m, m, P, gridW/m, m, P).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
 *   row = (((t * gridH/m + bh) * gridW/m + bw) * m + mh) * m + mw      (t, merge window, position in it)
 *   col = ((c * T + tp) * P + ph) * P + pw                             (channel, frame, pixel in the patch)
 *   value = frames[t * T + tp][c, (bh * m + mh) * P + ph, (bw * m + mw) * P + pw]
 *
 * so each 2x2 merge window is 4 consecutive rows, which the vision tower's merger relies on.
 * An image is 2 references to the same frame (HF repeats it to temporalPatchSize frames).
 */
export function patchify(frames: Float32Array[], channels: number, height: number, width: number, o: PatchifyOptions): Patches {
  const { patchSize: P, temporalPatchSize: T, mergeSize: m } = o;
  if (frames.length === 0 || frames.length % T !== 0) {
    throw new ProcessorError(`patchify: ${frames.length} frames is not a positive multiple of temporal_patch_size ${T}`);
  }
  if (height % (P * m) !== 0 || width % (P * m) !== 0) {
    throw new ProcessorError(`patchify: ${height}x${width} is not a multiple of patch_size * merge_size = ${P * m}`);
  }
  const gridT = frames.length / T, gridH = height / P, gridW = width / P;
  const cols = channels * T * P * P, plane = height * width;
  const data = new Float32Array(gridT * gridH * gridW * cols);
  let d = 0;
  for (let t = 0; t < gridT; t++) {
    for (let bh = 0; bh < gridH / m; bh++) {
      for (let bw = 0; bw < gridW / m; bw++) {
        for (let mh = 0; mh < m; mh++) {
          for (let mw = 0; mw < m; mw++) {
            const y0 = (bh * m + mh) * P, x0 = (bw * m + mw) * P;
            for (let c = 0; c < channels; c++) {
              for (let tp = 0; tp < T; tp++) {
                const f = frames[t * T + tp]!;
                for (let ph = 0; ph < P; ph++) {
                  const s = c * plane + (y0 + ph) * width + x0;
                  for (let pw = 0; pw < P; pw++) data[d++] = f[s + pw]!;
                }
              }
            }
          }
        }
      }
    }
  }
  return { data, gridT, gridH, gridW };
}

export interface ImageProcessorOutput {
  /** all images' patch rows, concatenated in input order */
  pixelValues: Float32Array;
  /** [N, C * temporal_patch_size * patch_size^2] */
  shape: [number, number];
  /** [t, h, w] per image, in patches before merging (t = 1 for an image) */
  imageGridThw: number[][];
}

/**
 * smart_resize's (height, width) for an image, its errors (transformers' wording) prefixed with the file, and
 * refused past MAX_IMAGE_PIXELS (a size.shortest_edge of 1e12 would otherwise allocate a terapixel frame).
 */
function resizedSize(img: RgbImage, where: string, T: number, factor: number, size: VisualProcessorFields['size']): [number, number] {
  let hw: [number, number];
  try {
    hw = smartResize(T, img.height, img.width, T, factor, size.shortest_edge, size.longest_edge);
  } catch (e) {
    throw e instanceof ProcessorError ? new ProcessorError(`${where}: ${e.message}`) : e;
  }
  if (hw[0] * hw[1] > MAX_IMAGE_PIXELS) {
    throw new ProcessorError(`${where}: resizing ${img.width}x${img.height} to ${hw[1]}x${hw[0]} for size ${brief(size)} passes the ${MAX_IMAGE_PIXELS}-pixel limit`);
  }
  return hw;
}

export class Glm4vImageProcessor {
  constructor(readonly config: Glm4vImageProcessorConfig) {}

  /** Reads `<dir>/preprocessor_config.json`. */
  static fromPretrained<T extends typeof Glm4vImageProcessor>(this: T, dir: string): InstanceType<T> {
    const file = path.join(dir, 'preprocessor_config.json');
    return new this(parseImageProcessorConfig(readJson(file), `${file}: `)) as InstanceType<T>;
  }

  /** Resize (smart_resize + antialiased bicubic), rescale + normalize, and patchify each image. */
  preprocess(images: RgbImage[]): ImageProcessorOutput {
    const cfg = this.config;
    if (images.length === 0) throw new ProcessorError('preprocess: no images');
    const factor = cfg.patch_size * cfg.merge_size, T = cfg.temporal_patch_size;
    const tables = pixelTables(cfg);
    const parts: Float32Array[] = [], imageGridThw: number[][] = [];
    images.forEach((img, i) => {
      const where = img.source ?? `image ${i}`;
      if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * 3) {
        throw new ProcessorError(`${where}: ${img.width}x${img.height} with ${img.data.length} bytes, expected ${img.width * img.height * 3} (RGB)`);
      }
      let frame = img;
      if (cfg.do_resize) {
        const [h, w] = resizedSize(img, where, T, factor, cfg.size);
        frame = resizeBicubicAntialias(img, h, w);
      } else if (img.height % factor !== 0 || img.width % factor !== 0) {
        throw new ProcessorError(`${where}: ${img.height}x${img.width} (HxW) is not a multiple of ${factor}, and do_resize is false`);
      }
      const chw = toChannelsFirst(frame, tables);
      const p = patchify(new Array<Float32Array>(T).fill(chw), 3, frame.height, frame.width, {
        patchSize: cfg.patch_size, temporalPatchSize: T, mergeSize: cfg.merge_size,
      });
      parts.push(p.data);
      imageGridThw.push([p.gridT, p.gridH, p.gridW]);
    });
    const { data: pixelValues, shape } = stackPatchRows(parts, 3 * T * cfg.patch_size * cfg.patch_size);
    return { pixelValues, shape, imageGridThw };
  }
}

/** GLM-4.6V's processor class (modular_glm46v.py copies Glm4vImageProcessor unchanged). */
export class Glm46VImageProcessor extends Glm4vImageProcessor {}
