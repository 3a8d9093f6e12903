// Port of transformers/models/glm4v/video_processing_glm4v.py (Glm4vVideoProcessor) and
// glm46v/video_processing_glm46v.py (Glm46VVideoProcessor) with the BaseVideoProcessor flow they inherit
// (video_processing_utils.py: sample, resize, fused rescale/normalize, patchify). The two classes differ only in
// sample_frames (processors/video_sampling.ts). Host arrays only, no tensors.
import * as fs from 'fs';
import * as path from 'path';
import { bool, ConfigError, isObject, num, readJson } from '../lib/config';
import { ProcessorError } from './errors';
import type { RgbImage } from './image_io';
import { parseVisualProcessorFields, patchify, pixelTables, stackPatchRows, toChannelsFirst, VisualProcessorFields } from './image_processor';
import type { ProcessedVideo, ProcessedVideos } from './processor';
import { resizeBicubicAntialias } from './resize';
import { smartResize } from './smart_resize';
import type { DecodedVideo } from './video_io';
import { frameTimestamps, sampleFramesGlm46v, sampleFramesGlm4v, VideoMetadata } from './video_sampling';

const KNOWN_TYPES = ['Glm4vVideoProcessor', 'Glm46VVideoProcessor'];

/** video_preprocessor_config.json, verbatim keys, the Glm4vVideoProcessor class defaults applied. */
export interface Glm4vVideoProcessorConfig extends VisualProcessorFields {
  do_sample_frames: boolean;
  /** frames per second GLM-4.1V samples at (GLM-4.6V's dynamic policy ignores it) */
  fps: number;
  /** seconds beyond which GLM-4.1V spreads max_duration * fps frames over the whole video */
  max_duration: number;
  video_processor_type: string | undefined;
}

/** Applies the Glm4vVideoProcessor class defaults (VP 57-76) and checks the values; errors name `at` + the key. */
export function parseVideoProcessorConfig(json: unknown, at = ''): Glm4vVideoProcessorConfig {
  // size is an area of the whole clip here: frames * h * w
  const base = parseVisualProcessorFields(json, at, 'video', KNOWN_TYPES, 28 * 28 * 2 * 30000);
  const j = base.raw;
  const cfg: Glm4vVideoProcessorConfig = {
    ...base,
    do_sample_frames: bool(j, at, 'do_sample_frames', true),
    fps: num(j, at, 'fps', 2),
    max_duration: num(j, at, 'max_duration', 300),
    video_processor_type: j.video_processor_type as string | undefined,
  };
  if (!(cfg.fps > 0)) throw new ConfigError(`${at}fps: must be positive, got ${cfg.fps}`);
  return cfg;
}

/** One processed video as the processor needs it, plus the times of its sampled frames. */
export interface VideoFeatures extends ProcessedVideo {
  /** seconds of each sampled frame, index / fps (HF VideoMetadata.timestamps); null without an fps */
  timestamps: number[] | null;
}

export interface VideoProcessorOutput extends ProcessedVideos {
  /** all videos' patch rows, concatenated in input order */
  pixelValuesVideos: Float32Array;
  /** [N, C * temporal_patch_size * patch_size^2] */
  shape: [number, number];
  videos: VideoFeatures[];
}

export interface VideoPreprocessOptions {
  /** default: the config's do_sample_frames */
  doSampleFrames?: boolean;
  /** GLM-4.1V's sampling rate (default: the config's fps); GLM-4.6V's policy ignores it */
  fps?: number;
}

export class Glm4vVideoProcessor {
  constructor(readonly config: Glm4vVideoProcessorConfig) {}

  /** Reads `<dir>/video_preprocessor_config.json`, else `<dir>/preprocessor_config.json`, as transformers does. */
  static fromPretrained<T extends typeof Glm4vVideoProcessor>(this: T, dir: string): InstanceType<T> {
    const file = ['video_preprocessor_config.json', 'preprocessor_config.json'].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
    if (!file) throw new ConfigError(`${dir}: no video_preprocessor_config.json or preprocessor_config.json`);
    const json = readJson(file);
    // a shared preprocessor_config.json names the image processor class; only its keys matter here
    const own = isObject(json) && file.endsWith('preprocessor_config.json') && !file.endsWith('video_preprocessor_config.json')
      ? { ...json, video_processor_type: undefined } : json;
    return new this(parseVideoProcessorConfig(own, `${file}: `)) as InstanceType<T>;
  }

  /** GLM-4.1V: `fps` frames per second, spread over the whole video past max_duration. */
  sampleFrames(metadata: VideoMetadata, opts: { fps?: number } = {}): number[] {
    return sampleFramesGlm4v(metadata, { fps: opts.fps ?? this.config.fps, maxDuration: this.config.max_duration });
  }

  /** HF _decode_and_sample_videos on decoded frames: keeps the sampled ones and records their source indices. */
  sample(video: DecodedVideo, opts: { fps?: number } = {}): DecodedVideo {
    if (video.sampled) return video;
    if (video.frames.length !== video.metadata.totalFrames) {
      throw new ProcessorError(`${video.source}: sampling needs every frame of the video, got ${video.frames.length} of ${video.metadata.totalFrames}`);
    }
    const framesIndices = this.sampleFrames(video.metadata, opts);
    return { ...video, frames: framesIndices.map((i) => video.frames[i]!), framesIndices, sampled: true };
  }

  /**
   * Samples (unless told not to), resizes every frame of a video to the smart_resize size of the whole clip
   * (frame count inside the pixel budget), rescales and normalizes, pads an odd frame count with the last frame,
   * and patchifies: rows of merge-window-ordered patches, one [t, h, w] grid per video.
   */
  preprocess(videos: DecodedVideo[], opts: VideoPreprocessOptions = {}): VideoProcessorOutput {
    const cfg = this.config;
    if (videos.length === 0) throw new ProcessorError('preprocess: no videos');
    const doSample = opts.doSampleFrames ?? cfg.do_sample_frames;
    const factor = cfg.patch_size * cfg.merge_size, T = cfg.temporal_patch_size;
    const tables = pixelTables(cfg);
    const parts: Float32Array[] = [], out: VideoFeatures[] = [];
    for (const input of videos) {
      const video = doSample ? this.sample(input, opts.fps !== undefined ? { fps: opts.fps } : {}) : input;
      const { frames, source } = video;
      if (frames.length === 0) throw new ProcessorError(`${source}: a video needs at least one frame, got none`);
      const { width, height } = frames[0]!;
      frames.forEach((f, i) => {
        if (f.width !== width || f.height !== height) {
          throw new ProcessorError(`${source}: frames differ in size: frame ${i} is ${f.width}x${f.height} but frame 0 is ${width}x${height} (WxH)`);
        }
        if (f.data.length !== f.width * f.height * 3) throw new ProcessorError(`${source}: frame ${i} has ${f.data.length} bytes, expected ${f.width * f.height * 3} (RGB)`);
      });
      let resized: RgbImage[] = frames;
      if (cfg.do_resize) {
        const [h, w] = smartResize(frames.length, height, width, T, factor, cfg.size.shortest_edge, cfg.size.longest_edge);
        resized = frames.map((f) => resizeBicubicAntialias(f, h, w));
      } else if (height % factor !== 0 || width % factor !== 0) {
        throw new ProcessorError(`${source}: frames are ${height}x${width} (HxW), not a multiple of ${factor}, and do_resize is false`);
      }
      const planes = resized.map((f) => toChannelsFirst(f, tables));
      while (planes.length % T !== 0) planes.push(planes[planes.length - 1]!);
      const p = patchify(planes, 3, resized[0]!.height, resized[0]!.width, { patchSize: cfg.patch_size, temporalPatchSize: T, mergeSize: cfg.merge_size });
      parts.push(p.data);
      const fps = video.metadata.fps;
      out.push({ videoGridThw: [p.gridT, p.gridH, p.gridW], fps, framesIndices: video.framesIndices, timestamps: fps === null ? null : frameTimestamps(video.framesIndices, fps) });
    }
    const { data: pixelValuesVideos, shape } = stackPatchRows(parts, 3 * T * cfg.patch_size * cfg.patch_size);
    return { pixelValuesVideos, shape, videos: out };
  }
}

/** GLM-4.6V: the same processor with the dynamic-fps sampling (3 / 1 / 0.5 fps by duration, at most 640 frames). */
export class Glm46VVideoProcessor extends Glm4vVideoProcessor {
  override sampleFrames(metadata: VideoMetadata): number[] {
    return sampleFramesGlm46v(metadata, this.config.temporal_patch_size);
  }
}

/** AutoVideoProcessor: the class named by video_processor_type, else the one that goes with processor_class. */
export function loadVideoProcessor(dir: string): Glm4vVideoProcessor {
  const configs = ['video_preprocessor_config.json', 'preprocessor_config.json', 'tokenizer_config.json']
    .filter((f) => fs.existsSync(path.join(dir, f)))
    .map((f) => readJson(path.join(dir, f)))
    .filter(isObject);
  const type = configs.map((j) => j.video_processor_type).find((t) => t !== undefined);
  const cls = configs.map((j) => j.processor_class).find((c) => c !== undefined);
  const name = type ?? { Glm46VProcessor: 'Glm46VVideoProcessor', Glm4vProcessor: 'Glm4vVideoProcessor' }[cls as string];
  if (name === 'Glm46VVideoProcessor') return Glm46VVideoProcessor.fromPretrained(dir);
  if (name === 'Glm4vVideoProcessor') return Glm4vVideoProcessor.fromPretrained(dir);
  throw new ConfigError(`${dir}: cannot tell the video processor: video_processor_type ${JSON.stringify(type)}, processor_class ${JSON.stringify(cls)}`);
}
