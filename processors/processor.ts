// Port of transformers/models/glm46v/processing_glm46v.py (Glm46VProcessor) and glm4v/processing_glm4v.py
// (Glm4vProcessor), with the ProcessorMixin.__call__ / apply_chat_template flow they inherit (processing_utils.py).
import * as tf from '@tensorflow/tfjs';
import * as path from 'path';
import { files } from '../lib/byte_source';
import { isObject } from '../lib/config';
import { ChatMessage, ChatTemplate, ChatTemplateOptions, ContentPart } from './chat_template';
import { ProcessorError } from './errors';
import { loadImage, RgbImage } from './image_io';
import { Glm46VImageProcessor, Glm4vImageProcessor } from './image_processor';
import { GlmTokenizer, readModelJson } from './tokenizer';

/** What an image processor returns: rows of flattened patches and one [t, h, w] patch grid per image. */
export interface ImageFeatures {
  pixelValues: Float32Array;
  shape: number[];
  imageGridThw: number[][];
}

/** The image processor the processor drives (processors/image_processor.ts Glm46VImageProcessor). */
export interface ImageProcessorLike<Image> {
  preprocess(images: Image[]): ImageFeatures;
}

/** A video after the video processor: its grid and the metadata of the sampled frames (HF VideoMetadata). */
export interface ProcessedVideo {
  videoGridThw: number[];
  /** frames per second of the source; null means unknown, which HF replaces by 24 with a warning */
  fps: number | null;
  /** source indices of the sampled frames (after padding to an even count) */
  framesIndices: number[];
}

export interface ProcessedVideos {
  pixelValuesVideos?: Float32Array;
  shape?: number[];
  videos: ProcessedVideo[];
}

export interface ProcessorInputs<Image> {
  text: string | string[];
  images?: Image[];
  /** image processor outputs computed beforehand, used instead of `images` */
  processedImages?: ImageFeatures;
  videos?: ProcessedVideos;
  paddingSide?: 'left' | 'right';
}

export interface ProcessorOutput {
  /** [B, L], padded to the longest row on the tokenizer's padding side */
  inputIds: number[][];
  attentionMask: number[][];
  /** 0 text, 1 image token, 2 image token inside a video span (HF create_mm_token_type_ids) */
  mmTokenTypeIds: number[][];
  pixelValues?: Float32Array;
  pixelValuesShape?: number[];
  imageGridThw?: number[][];
  pixelValuesVideos?: Float32Array;
  pixelValuesVideosShape?: number[];
  videoGridThw?: number[][];
}

/** What a vision-language model's forward takes, with the pixel values as tensors (`modelInputs`). */
export interface ModelInputs {
  inputIds: number[][];
  attentionMask: number[][];
  mmTokenTypeIds: number[][];
  pixelValues?: tf.Tensor2D;
  imageGridThw?: number[][];
  pixelValuesVideos?: tf.Tensor2D;
  videoGridThw?: number[][];
}

/**
 * A processor output as the model takes it: pixel values as float32 tensors, which the caller disposes (ids, mask
 * and token types stay arrays). Every caller that runs a model goes through this or `modelInputs`.
 */
export function asModelInputs(enc: ProcessorOutput): ModelInputs {
  const out: ModelInputs = { inputIds: enc.inputIds, attentionMask: enc.attentionMask, mmTokenTypeIds: enc.mmTokenTypeIds };
  if (enc.pixelValues) {
    out.pixelValues = tf.tensor2d(enc.pixelValues, enc.pixelValuesShape as [number, number]);
    out.imageGridThw = enc.imageGridThw!;
  }
  if (enc.pixelValuesVideos) {
    out.pixelValuesVideos = tf.tensor2d(enc.pixelValuesVideos, enc.pixelValuesVideosShape as [number, number]);
    out.videoGridThw = enc.videoGridThw!;
  }
  return out;
}

/**
 * Python's `format(x, f'.{digits}f')`: the exact binary value of x rounded half-to-even (0.25 -> "0.2", 0.35 -> "0.3"
 * because 0.35 is 0.34999…; JS toFixed differs on ties such as 0.25). Keeps the sign of negative zero, like Python.
 */
export function pythonFormatFixed(x: number, digits: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const field = (hi >>> 20) & 0x7ff;
  const frac = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  // |x| = mant * 2^exp exactly
  const mant = field === 0 ? frac : frac | (1n << 52n);
  const exp = field === 0 ? -1074 : field - 1075;
  const num = mant * 10n ** BigInt(digits);
  let q: bigint;
  if (exp >= 0) {
    q = num << BigInt(exp);
  } else {
    const den = 1n << BigInt(-exp);
    q = num / den;
    const twiceRem = 2n * (num % den);
    if (twiceRem > den || (twiceRem === den && q % 2n === 1n)) q += 1n;
  }
  const s = q.toString().padStart(digits + 1, '0');
  const body = digits > 0 ? `${s.slice(0, -digits)}.${s.slice(-digits)}` : s;
  return (x < 0 || Object.is(x, -0) ? '-' : '') + body;
}

/** Each video frame's text: its image span, then the timestamp. The one place the two processors differ. */
export type FrameLabel = (timestampSec: number) => string;
/** GLM-4.6V: `f"{t:.1f} seconds"` */
export const glm46vFrameLabel: FrameLabel = (t) => `${pythonFormatFixed(t, 1)} seconds`;
/** GLM-4.1V: `str(int(t))`, truncating */
export const glm4vFrameLabel: FrameLabel = (t) => String(Math.trunc(t));

const prod = (xs: number[]): number => xs.reduce((a, b) => a * b, 1);

/** replace_image_token: the image token repeated t*h*w / merge^2 times. */
export function imageReplacement(gridThw: number[], mergeSize: number, imageToken: string): string {
  return imageToken.repeat(Math.floor(prod(gridThw) / mergeSize ** 2));
}

/**
 * replace_video_token: per temporal patch, `<|begin_of_image|>` + h*w/merge^2 image tokens + `<|end_of_image|>` +
 * the label of that patch's first frame (timestamps[::2], padded with the last one, or 0).
 */
export function videoReplacement(video: ProcessedVideo, mergeSize: number, imageToken: string, label: FrameLabel): string {
  const grid = video.videoGridThw;
  const T = grid[0] ?? 0;
  const perFrame = Math.floor(Math.floor(prod(grid) / mergeSize ** 2) / T);
  const fps = video.fps ?? 24;
  const timestamps = video.framesIndices.map((i) => i / fps).filter((_, i) => i % 2 === 0);
  const selected = timestamps.slice(0, T);
  while (selected.length < T) selected.push(selected.length ? selected[selected.length - 1]! : 0);
  return selected.map((ts) => `<|begin_of_image|>${imageToken.repeat(perFrame)}<|end_of_image|>${label(ts)}`).join('');
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * get_text_with_replacements: one left-to-right pass over each text, each placeholder replaced by the next
 * replacement of its kind, consumed in order across the batch. Tokens of a kind with no replacements stay as they are.
 */
export function expandPlaceholders(texts: string[], kinds: { token: string; replacements: string[] }[]): string[] {
  const active = kinds.filter((k) => k.replacements.length > 0);
  if (active.length === 0) return texts.slice();
  const re = new RegExp(active.map((k) => escapeRegExp(k.token)).join('|'), 'g');
  const next = new Map(active.map((k) => [k.token, 0]));
  return texts.map((t) => t.replace(re, (tok) => {
    const kind = active.find((k) => k.token === tok)!;
    const i = next.get(tok)!;
    next.set(tok, i + 1);
    const r = kind.replacements[i];
    if (r === undefined) throw new ProcessorError(`more ${tok} placeholders than inputs: only ${kind.replacements.length} given`);
    return r;
  }));
}

/** create_mm_token_type_ids: 1 for an image token, 2 for one inside a `<|begin_of_video|>…<|end_of_video|>` span. */
export function createMmTokenTypeIds(inputIds: number[][], ids: { image: number; videoStart: number; videoEnd: number }): number[][] {
  return inputIds.map((row) => {
    let depth = 0;
    return row.map((id) => {
      if (id === ids.videoStart) depth += 1;
      else if (id === ids.videoEnd) depth -= 1;
      return id === ids.image ? (depth > 0 ? 2 : 1) : 0;
    });
  });
}

/** merge_size from a processor config file (HF default 2); a missing file falls back to `def`. */
function mergeSizeOf(dir: string, file: string, def: number): number {
  if (!files().exists(path.join(dir, file))) return def;
  const v = readModelJson(dir, file).merge_size ?? 2;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new ProcessorError(`${path.join(dir, file)}: merge_size must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * The image of a chat content part, as HF's processor fetches it: `image` (pixels, or a local file path), else a
 * local `path` / `url` file. Remote URLs are not fetched.
 */
function partImage(part: ContentPart, baseDir: string): RgbImage | unknown {
  const src = part.image ?? part.path ?? part.url;
  if (src === undefined) throw new ProcessorError('applyChatTemplate: an image part has no image, path or url to process');
  if (typeof src !== 'string') return src;
  if (/^[a-z]+:\/\//i.test(src)) throw new ProcessorError(`applyChatTemplate: cannot fetch ${src}: only local image files are read`);
  return loadImage(path.resolve(baseDir, src));
}

export class Glm4vProcessor<Image = RgbImage> {
  /** the image processor class that goes with this processor (HF's image_processor_class) */
  static imageProcessorClass: typeof Glm4vImageProcessor = Glm4vImageProcessor;

  readonly imageToken: string;
  readonly videoToken: string;
  readonly imageTokenId: number;
  readonly videoTokenId: number;
  readonly videoStartId: number;
  readonly videoEndId: number;
  /** replace_frame_token_id's timestamp text */
  readonly frameLabel: FrameLabel = glm4vFrameLabel;

  constructor(
    readonly tokenizer: GlmTokenizer,
    readonly chatTemplate: ChatTemplate | null,
    readonly imageProcessor: ImageProcessorLike<Image> | null,
    readonly mergeSize = 2,
    readonly videoMergeSize = mergeSize,
  ) {
    // HF takes the tokens from tokenizer attributes when the config names them (extra_special_tokens as a dict)
    const named = isObject(tokenizer.config.extra_special_tokens) ? tokenizer.config.extra_special_tokens : {};
    this.imageToken = typeof named.image_token === 'string' ? named.image_token : '<|image|>';
    this.videoToken = typeof named.video_token === 'string' ? named.video_token : '<|video|>';
    this.imageTokenId = tokenizer.tokenToId(this.imageToken);
    this.videoTokenId = tokenizer.tokenToId(this.videoToken);
    this.videoStartId = tokenizer.tokenToId('<|begin_of_video|>');
    this.videoEndId = tokenizer.tokenToId('<|end_of_video|>');
  }

  /**
   * Loads the tokenizer, the chat template (if the folder has one), the merge sizes and, unless one is passed in,
   * the folder's image processor (when it has a preprocessor_config.json). With `null`, `call` takes
   * `processedImages` only.
   */
  static fromPretrained<T extends typeof Glm4vProcessor, Image = RgbImage>(
    this: T, dir: string, imageProcessor?: ImageProcessorLike<Image> | null,
  ): InstanceType<T> {
    if (imageProcessor === undefined && files().exists(path.join(dir, 'preprocessor_config.json'))) {
      imageProcessor = this.imageProcessorClass.fromPretrained(dir) as unknown as ImageProcessorLike<Image>;
    }
    const tokenizer = GlmTokenizer.fromPretrained(dir);
    let template: ChatTemplate | null = null;
    try {
      template = ChatTemplate.fromPretrained(dir);
    } catch (e) {
      if (!(e instanceof ProcessorError) || !e.message.includes('no chat template')) throw e;
    }
    const merge = mergeSizeOf(dir, 'preprocessor_config.json', 2);
    return new this(tokenizer, template, imageProcessor ?? null, merge, mergeSizeOf(dir, 'video_preprocessor_config.json', merge)) as InstanceType<T>;
  }

  /**
   * Renders the chat template (tokenize: false), or renders it and runs `call` on the prompt and the messages'
   * images (HF's return_dict=True output); image file paths are read relative to `baseDir` (default: cwd).
   */
  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions & { tokenize?: false }): string;
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions & { tokenize: true; baseDir?: string }): ProcessorOutput;
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions & { tokenize?: boolean; baseDir?: string } = {}): string | ProcessorOutput {
    if (!this.chatTemplate) throw new ProcessorError(`${this.tokenizer.source}: cannot apply a chat template, the folder has none`);
    const prompt = this.chatTemplate.render(messages, opts, this.tokenizer.specialTokensMap);
    if (!opts.tokenize) return prompt;
    const images: Image[] = [];
    for (const m of messages) {
      if (!Array.isArray(m.content)) continue;
      for (const part of m.content) {
        if (part.type === 'video' || 'video' in part) throw new ProcessorError('applyChatTemplate: videos need a video processor; pass processed videos to call()');
        if (part.type === 'image' || 'image' in part) images.push(partImage(part, opts.baseDir ?? '.') as Image);
      }
    }
    return this.call({ text: [prompt], ...(images.length ? { images } : {}) });
  }

  /** ProcessorMixin.__call__: checks counts, runs the image processor, expands placeholders, tokenizes, pads. */
  call(inputs: ProcessorInputs<Image>): ProcessorOutput {
    const texts = typeof inputs.text === 'string' ? [inputs.text] : inputs.text.slice();
    const features = this.processImages(inputs);
    const nImages = features ? features.imageGridThw.length : null;
    this.checkCounts(texts, this.imageToken, nImages, 'images');
    this.checkCounts(texts, this.videoToken, inputs.videos ? inputs.videos.videos.length : null, 'videos');

    const expanded = expandPlaceholders(texts, [
      { token: this.imageToken, replacements: (features?.imageGridThw ?? []).map((g) => imageReplacement(g, this.mergeSize, this.imageToken)) },
      { token: this.videoToken, replacements: (inputs.videos?.videos ?? []).map((v) => videoReplacement(v, this.videoMergeSize, this.imageToken, this.frameLabel)) },
    ]);
    const { inputIds, attentionMask } = this.tokenizer.encodeBatch(expanded, inputs.paddingSide ? { paddingSide: inputs.paddingSide } : {});
    this.checkTokenizedCounts(expanded, inputIds);

    const out: ProcessorOutput = {
      inputIds,
      attentionMask,
      mmTokenTypeIds: createMmTokenTypeIds(inputIds, { image: this.imageTokenId, videoStart: this.videoStartId, videoEnd: this.videoEndId }),
    };
    if (features) Object.assign(out, { pixelValues: features.pixelValues, pixelValuesShape: features.shape, imageGridThw: features.imageGridThw });
    if (inputs.videos) {
      out.videoGridThw = inputs.videos.videos.map((v) => v.videoGridThw);
      if (inputs.videos.pixelValuesVideos) out.pixelValuesVideos = inputs.videos.pixelValuesVideos;
      if (inputs.videos.shape) out.pixelValuesVideosShape = inputs.videos.shape;
    }
    return out;
  }

  /** `call` with `return_tensors`: the model's inputs, pixel values as tensors (see asModelInputs). */
  modelInputs(inputs: ProcessorInputs<Image>): ModelInputs {
    return asModelInputs(this.call(inputs));
  }

  /** decode / batchDecode forward to the tokenizer, keeping special tokens unless told otherwise (as HF's do). */
  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(ids, opts);
  }

  batchDecode(batch: ArrayLike<number>[], opts: { skipSpecialTokens?: boolean } = {}): string[] {
    return this.tokenizer.batchDecode(batch, opts);
  }

  /** post_process_image_text_to_text: the generated rows as text, special tokens skipped by default. */
  postProcessImageTextToText(batch: ArrayLike<number>[], opts: { skipSpecialTokens?: boolean } = {}): string[] {
    return this.tokenizer.batchDecode(batch, { skipSpecialTokens: opts.skipSpecialTokens ?? true });
  }

  private processImages(inputs: ProcessorInputs<Image>): ImageFeatures | null {
    if (inputs.processedImages) {
      if (inputs.images) throw new ProcessorError('call: pass images or processedImages, not both');
      return inputs.processedImages;
    }
    if (!inputs.images) return null;
    if (!this.imageProcessor) throw new ProcessorError(`call: ${inputs.images.length} images given but the processor has no image processor`);
    return this.imageProcessor.preprocess(inputs.images);
  }

  /** validate_inputs: the placeholders in the batch must match the inputs one to one. */
  private checkCounts(texts: string[], token: string, given: number | null, what: string): void {
    const inText = texts.reduce((n, t) => n + t.split(token).length - 1, 0);
    if (given === null) {
      if (inText > 0) throw new ProcessorError(`Found ${inText} ${token} tokens in the text but no ${what} were passed`);
    } else if (inText !== given) {
      throw new ProcessorError(`The number of ${token} tokens in the prompts (${inText}) must equal the number of ${what} passed (${given})`);
    }
  }

  /** _check_special_mm_tokens: tokenization must keep every placeholder as one token. */
  private checkTokenizedCounts(texts: string[], inputIds: number[][]): void {
    texts.forEach((t, b) => {
      for (const [token, id] of [[this.imageToken, this.imageTokenId], [this.videoToken, this.videoTokenId]] as const) {
        const inText = t.split(token).length - 1;
        const inIds = inputIds[b]!.filter((x) => x === id).length;
        if (inText !== inIds) throw new ProcessorError(`row ${b}: ${inText} ${token} in the text but ${inIds} id ${id} after tokenization`);
      }
    });
  }
}

/** GLM-4.6V's processor: identical to GLM-4.1V's except the frame timestamp text ("1.5 seconds"). */
export class Glm46VProcessor<Image = RgbImage> extends Glm4vProcessor<Image> {
  static override imageProcessorClass: typeof Glm4vImageProcessor = Glm46VImageProcessor;
  override readonly frameLabel: FrameLabel = glm46vFrameLabel;
}

/** AutoProcessor: the class named by `processor_class` in preprocessor_config.json, else tokenizer_config.json. */
export function loadProcessor<Image = RgbImage>(dir: string, imageProcessor?: ImageProcessorLike<Image> | null): Glm4vProcessor<Image> {
  const named = ['preprocessor_config.json', 'tokenizer_config.json']
    .filter((f) => files().exists(path.join(dir, f)))
    .map((f) => [f, readModelJson(dir, f).processor_class] as const)
    .find(([, c]) => c !== undefined);
  if (!named) throw new ProcessorError(`${dir}: no processor_class in preprocessor_config.json or tokenizer_config.json`);
  const [file, cls] = named;
  if (cls === 'Glm46VProcessor') return Glm46VProcessor.fromPretrained(dir, imageProcessor) as Glm46VProcessor<Image>;
  if (cls === 'Glm4vProcessor') return Glm4vProcessor.fromPretrained(dir, imageProcessor) as Glm4vProcessor<Image>;
  throw new ProcessorError(`${path.join(dir, file)}: processor_class ${JSON.stringify(cls)} is not Glm46VProcessor or Glm4vProcessor`);
}
