// Video input for the GLM-V video processor: decoded frames with their metadata, as transformers' video_utils
// (VideoMetadata, fetch_videos with its default torchcodec backend) hands them over. Three sources: frames already in
// memory, a folder of frame images, and a video file decoded by the `ffmpeg` / `ffprobe` command-line tools.
// Decoding stays here, outside the model code; a sampler (the processor's sample_frames) may pick the frames
// while loading, so that a long video never has all its frames in memory.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ProcessorError } from './errors';
import { loadImage, RgbImage } from './image_io';
import type { VideoMetadata } from './video_sampling';

export interface DecodedVideo {
  /** the frames kept, all of one size */
  frames: RgbImage[];
  /** of the source video, not of the kept frames */
  metadata: VideoMetadata;
  /** the source index of each kept frame (HF metadata.frames_indices) */
  framesIndices: number[];
  /** true when a sampler already picked `frames` while loading: the processor must not sample again */
  sampled: boolean;
  /** where the frames came from, for messages */
  source: string;
}

/** Picks source frame indices from the source's metadata (Glm46VVideoProcessor.sampleFrames and the like). */
export type FrameSampler = (metadata: VideoMetadata) => number[];

export interface VideoLoadOptions {
  /** frames per second of the source; overrides a folder's metadata.json */
  fps?: number;
  /** pick the frames to keep while loading; without it every frame is kept */
  sampleIndices?: FrameSampler;
  /** the PATH searched for ffmpeg and ffprobe (default: the process's PATH) */
  searchPath?: string;
}

const FRAME_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

function checkFrames(frames: RgbImage[], source: string, names?: string[]): void {
  if (frames.length === 0) throw new ProcessorError(`${source}: a video needs at least one frame, got none`);
  const { width, height } = frames[0]!;
  frames.forEach((f, i) => {
    if (f.width !== width || f.height !== height) {
      const name = names?.[i] ?? `frame ${i}`;
      throw new ProcessorError(`${source}: frames differ in size: ${name} is ${f.width}x${f.height} but ${names?.[0] ?? 'frame 0'} is ${width}x${height} (WxH)`);
    }
  });
}

function checkIndices(indices: number[], total: number, source: string): void {
  const bad = indices.find((i) => !Number.isInteger(i) || i < 0 || i >= total);
  if (bad !== undefined) throw new ProcessorError(`${source}: sampled frame index ${bad} is outside the ${total} frames of the video`);
}

function checkFps(fps: unknown, at: string): number | null {
  if (fps === undefined || fps === null) return null;
  if (typeof fps !== 'number' || !(fps > 0) || !Number.isFinite(fps)) throw new ProcessorError(`${at}: fps must be a positive number, got ${JSON.stringify(fps)}`);
  return fps;
}

/**
 * A video given as decoded frames (HF: an array video with a VideoMetadata). Without `fps` the video can be
 * processed only with do_sample_frames off, and GLM's prompt then assumes 24 fps as transformers does.
 */
export function videoFromFrames(frames: RgbImage[], meta: { fps?: number | null; duration?: number | null } = {}, source = 'video'): DecodedVideo {
  checkFrames(frames, source);
  return {
    frames,
    metadata: { totalFrames: frames.length, fps: checkFps(meta.fps, source), duration: meta.duration ?? null },
    framesIndices: frames.map((_, i) => i),
    sampled: false,
    source,
  };
}

/**
 * A folder of frame images (.png / .jpg), in name order. The fps comes from `opts.fps`, else from a
 * `metadata.json` in the folder (`{"fps": 2}`, optionally `"duration"` in seconds), else it is unknown.
 * With `sampleIndices`, only the picked frames are decoded.
 */
export function loadFrameFolder(dir: string, opts: Omit<VideoLoadOptions, 'searchPath'> = {}): DecodedVideo {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    throw new ProcessorError(`${dir}: cannot read the frame folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const names = entries.filter((n) => FRAME_EXTENSIONS.has(path.extname(n).toLowerCase())).sort();
  if (names.length === 0) throw new ProcessorError(`${dir}: no frame images (.png, .jpg, .jpeg) in the folder: a video needs at least one frame`);
  let json: Record<string, unknown> = {};
  const metaFile = path.join(dir, 'metadata.json');
  if (fs.existsSync(metaFile)) {
    try {
      json = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new ProcessorError(`${metaFile}: not valid JSON (${(e as Error).message})`);
    }
  }
  const duration = json.duration;
  if (duration !== undefined && duration !== null && (typeof duration !== 'number' || !(duration >= 0))) {
    throw new ProcessorError(`${metaFile}: duration must be a number of seconds, got ${JSON.stringify(duration)}`);
  }
  const metadata: VideoMetadata = {
    totalFrames: names.length,
    fps: opts.fps !== undefined ? checkFps(opts.fps, `${dir} (fps option)`) : checkFps(json.fps, `${metaFile}`),
    duration: (duration as number | undefined) ?? null,
  };
  const framesIndices = opts.sampleIndices ? opts.sampleIndices(metadata) : names.map((_, i) => i);
  checkIndices(framesIndices, names.length, dir);
  const picked = framesIndices.map((i) => names[i]!);
  const decoded = new Map<string, RgbImage>();
  const frames = picked.map((n) => decoded.get(n) ?? decoded.set(n, loadImage(path.join(dir, n))).get(n)!);
  checkFrames(frames, dir, picked);
  return { frames, metadata, framesIndices, sampled: opts.sampleIndices !== undefined, source: dir };
}

/** The executable `tool` on `searchPath`, or a ProcessorError that names the tool and what needs it. */
export function findTool(tool: string, searchPath: string | undefined, forFile: string): string {
  for (const d of (searchPath ?? '').split(path.delimiter).filter(Boolean)) {
    const p = path.join(d, tool);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not in this folder
    }
  }
  throw new ProcessorError(`${forFile}: decoding a video file needs '${tool}' (part of FFmpeg) on the PATH, and it is not there; ` +
    'install FFmpeg, or pass a folder of frame images with its fps instead');
}

function run(cmd: string, args: string[], onStdout?: (chunk: Buffer) => void): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [], err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => (onStdout ? onStdout(c) : out.push(c)));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new ProcessorError(`${path.basename(cmd)} ${args.join(' ')} failed (exit ${code}): ${Buffer.concat(err).toString().trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}

/** "30000/1001" -> [30000, 1001]; null for "0/0" or anything unusable. */
function rational(s: unknown): [number, number] | null {
  if (typeof s !== 'string') return null;
  const [n, d] = s.split('/').map(Number);
  return n !== undefined && d !== undefined && n > 0 && d > 0 && Number.isFinite(n) && Number.isFinite(d) ? [n, d] : null;
}

interface ProbedStream {
  /** of the decoded frames, after the rotation ffmpeg applies */
  width: number;
  height: number;
  metadata: VideoMetadata;
}

/**
 * The first video stream's metadata as transformers 5.24 reads a video file by default (torchcodec's
 * VideoDecoder in exact seek mode): a scan of the packets (no decoding) gives the frame count, the stream's
 * begin (smallest pts) and end (largest pts + duration), each converted to seconds as pts * num / den; then
 * duration = end - begin and fps = frames / duration (the header's r_frame_rate when the duration is 0).
 */
async function probe(ffprobe: string, file: string): Promise<ProbedStream> {
  const out = await run(ffprobe, ['-v', 'error', '-select_streams', 'v:0', '-show_entries',
    'stream=width,height,time_base,r_frame_rate:stream_side_data=rotation:packet=pts,dts,duration,flags', '-of', 'json', file]);
  let json: { streams?: Record<string, unknown>[]; packets?: Record<string, unknown>[] };
  try {
    json = JSON.parse(out.toString()) as typeof json;
  } catch (e) {
    throw new ProcessorError(`${file}: cannot read ffprobe's output (${(e as Error).message})`);
  }
  const s = json.streams?.[0];
  if (!s) throw new ProcessorError(`${file}: ffprobe found no video stream`);
  const tb = rational(s.time_base);
  if (!tb) throw new ProcessorError(`${file}: ffprobe reports no time base (${JSON.stringify(s.time_base)})`);
  const seconds = (pts: number) => (pts * tb[0]) / tb[1];
  let count = 0, begin = Infinity, end = -Infinity;
  for (const p of json.packets ?? []) {
    if (typeof p.flags === 'string' && p.flags.includes('D')) continue; // AV_PKT_FLAG_DISCARD
    const at = typeof p.pts === 'number' ? p.pts : Number(p.dts);
    const dur = typeof p.duration === 'number' ? p.duration : 0;
    if (!Number.isFinite(at)) continue;
    count++;
    begin = Math.min(begin, at);
    end = Math.max(end, at + dur);
  }
  if (count === 0) throw new ProcessorError(`${file}: the video stream has no frames`);
  const duration = seconds(end) - seconds(begin);
  const rate = rational(s.r_frame_rate);
  const fps = duration !== 0 ? count / duration : rate ? rate[0] / rate[1] : null;
  if (fps === null) throw new ProcessorError(`${file}: cannot tell the frame rate (no duration, r_frame_rate ${JSON.stringify(s.r_frame_rate)})`);
  let width = Number(s.width), height = Number(s.height);
  if (!(width > 0 && height > 0)) throw new ProcessorError(`${file}: ffprobe reports a frame size of ${s.width}x${s.height}`);
  const side = Array.isArray(s.side_data_list) ? (s.side_data_list as Record<string, unknown>[]) : [];
  const rotation = Number(side.find((d) => d.rotation !== undefined)?.rotation ?? 0);
  if (Math.abs(rotation) % 180 === 90) [width, height] = [height, width]; // ffmpeg (and torchcodec) rotate the frames
  return { width, height, metadata: { totalFrames: count, fps, duration } };
}

/**
 * Decodes a video file with ffmpeg (every frame in presentation order as rgb24, none dropped or duplicated, the
 * rotation metadata applied, as torchcodec does; its default yuv -> rgb conversion gives torchcodec's bytes) and
 * keeps the frames that `sampleIndices` picks (all by default). Needs `ffprobe` and `ffmpeg` on the PATH; a clear
 * error names the missing one.
 */
export async function loadVideoFile(file: string, opts: VideoLoadOptions = {}): Promise<DecodedVideo> {
  if (!fs.existsSync(file)) throw new ProcessorError(`${file}: no such video file`);
  const searchPath = opts.searchPath ?? process.env.PATH;
  const ffprobe = findTool('ffprobe', searchPath, file);
  const ffmpeg = findTool('ffmpeg', searchPath, file);
  const { width, height, metadata } = await probe(ffprobe, file);
  if (opts.fps !== undefined) metadata.fps = checkFps(opts.fps, `${file} (fps option)`);
  const framesIndices = opts.sampleIndices ? opts.sampleIndices(metadata) : Array.from({ length: metadata.totalFrames }, (_, i) => i);
  checkIndices(framesIndices, metadata.totalFrames, file);
  const wanted = new Set(framesIndices);
  const kept = new Map<number, RgbImage>();
  const frameBytes = width * height * 3;
  let pending: Buffer = Buffer.alloc(0), index = 0;
  await run(ffmpeg, ['-v', 'error', '-nostdin', '-i', file, '-map', '0:v:0', '-fps_mode', 'passthrough',
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], (chunk) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= frameBytes) {
      if (wanted.has(index)) kept.set(index, { width, height, data: new Uint8Array(pending.subarray(0, frameBytes)) });
      pending = pending.subarray(frameBytes);
      index++;
    }
  });
  const missing = framesIndices.find((i) => !kept.has(i));
  if (missing !== undefined) {
    throw new ProcessorError(`${file}: ffprobe reports ${metadata.totalFrames} frames but ffmpeg decoded ${index}; frame ${missing} is missing`);
  }
  return { frames: framesIndices.map((i) => kept.get(i)!), metadata, framesIndices, sampled: opts.sampleIndices !== undefined, source: file };
}

/** A folder of frames or a video file, by what the path is. */
export async function loadVideo(source: string, opts: VideoLoadOptions = {}): Promise<DecodedVideo> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch {
    throw new ProcessorError(`${source}: no such video file or frame folder`);
  }
  return stat.isDirectory() ? loadFrameFolder(source, opts) : loadVideoFile(source, opts);
}
