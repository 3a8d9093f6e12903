// Port of the frame sampling of transformers/models/glm4v/video_processing_glm4v.py and
// glm46v/video_processing_glm46v.py (`sample_frames`) and of VideoMetadata.timestamps (video_utils.py), with
// Python's semantics: numpy linspace(dtype=int) floors, round() is half-to-even, int() truncates, and every float
// expression keeps the reference's operand order (IEEE doubles give the same bits only for the same operations).
import { ProcessorError } from './errors';
import { pyRound } from './smart_resize';

/** What the sampler needs to know about a source video (HF VideoMetadata). */
export interface VideoMetadata {
  /** frames in the source */
  totalFrames: number;
  /** frames per second of the source; null when unknown */
  fps: number | null;
  /** seconds; null or 0 means unknown (the samplers then use round((totalFrames - 1) / fps) + 1) */
  duration: number | null;
}

/**
 * numpy.linspace(start, stop, num) with endpoint=True, float64: `i * step + start` with step = (stop - start) /
 * (num - 1), the last value exactly `stop`; a zero step multiplies `i / (num - 1)` by the delta instead.
 */
export function linspace(start: number, stop: number, num: number): number[] {
  if (!Number.isInteger(num) || num < 0) throw new ProcessorError(`linspace: number of samples must be a non-negative integer, got ${num}`);
  const div = num - 1;
  const delta = stop - start;
  const step = div > 0 ? delta / div : NaN;
  const y = Array.from({ length: num }, (_, i) => {
    if (div <= 0) return i * delta + start;
    return (step === 0 ? (i / div) * delta : i * step) + start;
  });
  if (num > 1) y[num - 1] = stop;
  return y;
}

/** numpy.linspace(start, stop, num, dtype=int): the float values floored (numpy >= 2 floors before the cast). */
export function linspaceInt(start: number, stop: number, num: number): number[] {
  return linspace(start, stop, num).map(Math.floor);
}

/** `metadata.duration or round(max_frame_idx / metadata.fps) + 1`, shared by both samplers. */
function durationOf(meta: VideoMetadata, fps: number): number {
  return meta.duration || pyRound((meta.totalFrames - 1) / fps) + 1;
}

function requireFps(meta: VideoMetadata | null | undefined, model: string): number {
  if (!meta || meta.fps === null || meta.fps === undefined) {
    throw new ProcessorError(
      `Asked to sample frames per second but no video metadata was provided which is required when sampling in ${model}. ` +
      'Give the video\'s fps (for a frame folder: {"fps": N} in its metadata.json) or set do_sample_frames=false');
  }
  if (!(meta.fps > 0) || !Number.isFinite(meta.fps)) throw new ProcessorError(`${model} sampling: fps must be a positive number, got ${meta.fps}`);
  if (!Number.isInteger(meta.totalFrames) || meta.totalFrames < 1) {
    throw new ProcessorError(`${model} sampling: a video needs at least one frame, got totalFrames=${meta.totalFrames}`);
  }
  return meta.fps;
}

/** Drops repeated indices keeping the first occurrence, then repeats the last one if the count is odd. */
export function dedupeEven(indices: number[]): number[] {
  const uniq = [...new Set(indices)];
  if (uniq.length % 2 === 1) uniq.push(uniq[uniq.length - 1]!);
  return uniq;
}

/**
 * GLM-4.6V's dynamic-fps sampling (Glm46VVideoProcessor.sample_frames): 3 frames per second up to 30 s, 1 up to
 * 5 min, 0.5 beyond (durations capped at 40 min), times the temporal patch size, at most 640 frames; frames are
 * taken at the first source frame at or after each sampling time, and when that gives too few or too many the
 * indices are spread evenly instead. The returned count is even.
 */
export function sampleFramesGlm46v(meta: VideoMetadata, temporalPatchSize = 2): number[] {
  const fps = requireFps(meta, 'Glm46V');
  const total = meta.totalFrames;
  const duration = durationOf(meta, fps);
  const effective = Math.min(duration, 2400);
  const targetFps = effective <= 30 ? 3 : effective <= 300 ? 1 : 0.5;
  const extractT = Math.min(Math.trunc(effective * targetFps * temporalPatchSize), 640);

  const durationPerFrame = 1 / fps;
  const maxSecond = Math.trunc(duration);
  let indices: number[] = [];
  if (total < extractT) {
    indices = linspaceInt(0, total - 1, extractT);
  } else {
    let current = 0;
    const invFps = 1 / (temporalPatchSize * targetFps);
    for (let f = 0; f < total; f++) {
      if (f * durationPerFrame >= current) {
        current += invFps;
        indices.push(f);
        if (current >= maxSecond) break;
      }
    }
  }
  if (indices.length < extractT) {
    const [start, end] = indices.length === 0 ? [0, Math.max(total - 1, 0)] : [indices[0]!, indices[indices.length - 1]!];
    indices = linspaceInt(start, end, extractT);
  } else if (indices.length > extractT) {
    indices = linspaceInt(0, total - 1, extractT);
  }
  return dedupeEven(indices);
}

/**
 * GLM-4.1V's sampling (Glm4vVideoProcessor.sample_frames): `fps` frames per second (default 2) for videos up to
 * `maxDuration` seconds (default 300), the frame at or after each time i / fps; longer videos get
 * maxDuration * fps frames spread over the whole duration. The returned count is even.
 */
export function sampleFramesGlm4v(meta: VideoMetadata, opts: { fps?: number; maxDuration?: number } = {}): number[] {
  const fps = requireFps(meta, 'GLM4V');
  const requested = opts.fps ?? 2;
  const maxDuration = opts.maxDuration ?? 300;
  const maxIdx = meta.totalFrames - 1;
  const duration = durationOf(meta, fps);
  let indices: number[];
  if (duration <= maxDuration) {
    const n = Math.max(Math.floor(duration * requested), 1);
    indices = Array.from({ length: n }, (_, i) => Math.min(maxIdx, Math.ceil((i * fps) / requested)));
  } else {
    const numSamples = Math.trunc(maxDuration * requested);
    indices = numSamples >= meta.totalFrames
      ? Array.from({ length: meta.totalFrames }, (_, i) => i)
      : linspace(0, duration, numSamples).map((t) => Math.min(maxIdx, Math.ceil(t * fps)));
  }
  return dedupeEven(indices);
}

/** VideoMetadata.timestamps: the time in seconds of each sampled frame, `index / fps`. */
export function frameTimestamps(framesIndices: readonly number[], fps: number): number[] {
  return framesIndices.map((i) => i / fps);
}
