// Videos of a chat request (vLLM's `{"type": "video_url", "video_url": {"url": ...}}`), with the limits of
// `glm46v generate --video`: a folder of frame images (no ffmpeg needed) or a video file, only under the folder given
// with --allow-files; a `data:video/...;base64` URL or an http(s) URL of a video file, decoded with ffmpeg where it is
// on the PATH. Frames are sampled by the model folder's video processor while loading, as the CLI does.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ChatMessage } from '../processors/chat_template';
import { ProcessorError } from '../processors/errors';
import { DecodedVideo, loadVideo, loadVideoFile } from '../processors/video_io';
import type { Glm4vVideoProcessor, VideoProcessorOutput } from '../processors/video_processor';
import { ApiError } from './errors';
import { ImageLimits, allowedPath, fetchLimited, tooBig } from './images';

export interface VideoLimits extends ImageLimits {
  /** largest encoded video file (data URL or download), in bytes */
  maxVideoBytes: number;
  /** videos in one request (the CLI takes one) */
  maxVideosPerRequest: number;
  /** the PATH searched for ffmpeg and ffprobe (default: the process's PATH) */
  ffmpegPath?: string;
}

const DATA_URL = /^data:video\/[\w.+-]+;base64,/i;

/** A video file's bytes decoded through a temporary file (ffprobe and ffmpeg read files), removed afterwards. */
async function decodeBytes(bytes: Uint8Array, vp: Glm4vVideoProcessor, limits: VideoLimits): Promise<DecodedVideo> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-video-'));
  const file = path.join(dir, 'video');
  try {
    fs.writeFileSync(file, bytes);
    const searchPath = limits.ffmpegPath ?? process.env.PATH;
    return await loadVideoFile(file, { sampleIndices: (m) => vp.sampleFrames(m), ...(searchPath !== undefined ? { searchPath } : {}) });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function loadOne(url: string, vp: Glm4vVideoProcessor, limits: VideoLimits, where: string): Promise<DecodedVideo> {
  const data = DATA_URL.exec(url);
  if (data) {
    const b64 = url.slice(data[0].length);
    if (b64.length * 0.75 > limits.maxVideoBytes + 3) throw tooBig(Math.floor(b64.length * 0.75), limits.maxVideoBytes, where, 'video');
    return decodeBytes(Buffer.from(b64, 'base64'), vp, limits);
  }
  if (url.startsWith('data:')) throw new ApiError(400, `${where}: video data URLs must be data:video/<format>;base64,...`, where);
  if (/^https?:\/\//i.test(url)) return decodeBytes(await fetchLimited(url, limits.maxVideoBytes, limits, where, 'video'), vp, limits);
  const real = allowedPath(url, limits, where, 'video');
  if (fs.statSync(real).isFile() && fs.statSync(real).size > limits.maxVideoBytes) throw tooBig(fs.statSync(real).size, limits.maxVideoBytes, where, 'video');
  const searchPath = limits.ffmpegPath ?? process.env.PATH;
  return loadVideo(real, { sampleIndices: (m) => vp.sampleFrames(m), ...(searchPath !== undefined ? { searchPath } : {}) });
}

/** The sampled frames must each fit the image pixel limit. */
function checkFrames(v: DecodedVideo, limits: VideoLimits, where: string): void {
  const f = v.frames[0];
  if (f && f.width * f.height > limits.maxImagePixels) {
    throw new ApiError(400, `${where}: video frames of ${f.width}x${f.height} pixels are over the limit of ${limits.maxImagePixels}`, where, 'video_too_large');
  }
}

/** Loading errors (no frames, no ffmpeg, a bad file) as 400s that name the part; the server's paths left out. */
function asRequestError(e: unknown, where: string, limits: VideoLimits): unknown {
  if (!(e instanceof ProcessorError)) return e;
  // the allowed folder first: it may itself lie under the temporary folder (or a checkout under /tmp)
  let msg = limits.allowFiles ? e.message.split(fs.realpathSync(limits.allowFiles)).join('<allowed>') : e.message;
  msg = msg.split(os.tmpdir()).join('<upload>');
  return new ApiError(400, `${where}: ${msg}`, where, 'invalid_video');
}

/** The videos of the messages in order, processed by `vp`; null when there are none. */
export async function loadMessageVideos(messages: ChatMessage[], vp: Glm4vVideoProcessor | null, limits: VideoLimits): Promise<VideoProcessorOutput | null> {
  const refs: { url: string; where: string }[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((p, j) => {
      if (p.type === 'video') refs.push({ url: p.url as string, where: `messages[${i}].content[${j}]` });
    });
  });
  if (!refs.length) return null;
  if (!vp) throw new ApiError(400, `${refs[0]!.where}: this model folder has no video processor, so it takes no video`, refs[0]!.where);
  if (refs.length > limits.maxVideosPerRequest) {
    throw new ApiError(400, `${refs.length} videos in one request, the limit is ${limits.maxVideosPerRequest}`, 'messages');
  }
  const videos: DecodedVideo[] = [];
  for (const r of refs) {
    try {
      const v = await loadOne(r.url, vp, limits, r.where);
      checkFrames(v, limits, r.where);
      videos.push(v);
    } catch (e) {
      throw asRequestError(e, r.where, limits);
    }
  }
  try {
    return vp.preprocess(videos);
  } catch (e) {
    throw asRequestError(e, refs[0]!.where, limits);
  }
}
