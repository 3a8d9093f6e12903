// Images of a chat request: `data:` URLs (base64 PNG/JPEG), http(s) URLs fetched with a byte and time limit, and
// local files only under the folder given with --allow-files. Decoded with processors/image_io.ts.
import * as fs from 'fs';
import * as path from 'path';
import type { ChatMessage } from '../processors/chat_template';
import { decodeImage, RgbImage } from '../processors/image_io';
import { ApiError } from './errors';

export interface ImageLimits {
  /** largest encoded image, in bytes (data URL, download or file) */
  maxImageBytes: number;
  /** largest decoded image, width * height */
  maxImagePixels: number;
  maxImagesPerRequest: number;
  fetchTimeoutMs: number;
  /** local image files are read only under this folder; unset: never */
  allowFiles?: string;
}

const DATA_URL = /^data:image\/(png|jpe?g);base64,/i;

/** 413 for a download, data URL or file of `n` bytes over `max`; `what`: image or video */
export function tooBig(n: number, max: number, where: string, what = 'image'): ApiError {
  return new ApiError(413, `${where}: ${what} of ${n} bytes is over the limit of ${max}`, where, `${what}_too_large`);
}

/** Reads a response body up to the byte limit, cancelling the download past it. */
async function readLimited(res: Response, max: number, where: string, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw tooBig(declared, max, where, what);
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += chunk.length;
    if (n > max) throw tooBig(n, max, where, what);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** GETs an http(s) URL with the time limit and a byte limit of `max`. */
export async function fetchLimited(url: string, max: number, limits: ImageLimits, where: string, what = 'image'): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(limits.fetchTimeoutMs);
  try {
    const res = await fetch(url, { signal, redirect: 'follow' });
    if (!res.ok) throw new ApiError(400, `${where}: fetching ${url} gave HTTP ${res.status}`, where, `${what}_fetch_failed`);
    return await readLimited(res, max, where, what);
  } catch (e) {
    if (e instanceof ApiError) throw e;
    const why = signal.aborted ? `no answer within ${limits.fetchTimeoutMs} ms` : (e as Error).message;
    throw new ApiError(400, `${where}: cannot fetch ${url} (${why})`, where, `${what}_fetch_failed`);
  }
}

/** A local path (or file:// URL) inside the allowed folder, with links resolved before the check. */
export function allowedPath(ref: string, limits: ImageLimits, where: string, what = 'image'): string {
  if (!limits.allowFiles) throw new ApiError(400, `${where}: local ${what} files are not allowed (start the server with --allow-files DIR)`, where);
  const file = ref.startsWith('file://') ? decodeURIComponent(new URL(ref).pathname) : ref;
  const root = fs.realpathSync(limits.allowFiles);
  let real: string;
  try {
    real = fs.realpathSync(path.resolve(root, file));
  } catch {
    throw new ApiError(400, `${where}: no ${what} file ${file} under the allowed folder`, where);
  }
  if (real !== root && !real.startsWith(root + path.sep)) throw new ApiError(400, `${where}: ${file} is outside the allowed folder`, where);
  return real;
}

function readAllowedFile(ref: string, limits: ImageLimits, where: string): Uint8Array {
  const real = allowedPath(ref, limits, where);
  const size = fs.statSync(real).size;
  if (size > limits.maxImageBytes) throw tooBig(size, limits.maxImageBytes, where);
  return fs.readFileSync(real);
}

async function imageBytes(url: string, limits: ImageLimits, where: string): Promise<Uint8Array> {
  const data = DATA_URL.exec(url);
  if (data) {
    const b64 = url.slice(data[0].length);
    if (b64.length * 0.75 > limits.maxImageBytes + 3) throw tooBig(Math.floor(b64.length * 0.75), limits.maxImageBytes, where);
    return Buffer.from(b64, 'base64');
  }
  if (url.startsWith('data:')) throw new ApiError(400, `${where}: data URLs must be data:image/png or data:image/jpeg with base64`, where);
  if (/^https?:\/\//i.test(url)) return fetchLimited(url, limits.maxImageBytes, limits, where);
  return readAllowedFile(url, limits, where);
}

async function loadOne(url: string, limits: ImageLimits, where: string): Promise<RgbImage> {
  const bytes = await imageBytes(url, limits, where);
  let img: RgbImage;
  try {
    img = decodeImage(bytes, where);
  } catch (e) {
    throw new ApiError(400, (e as Error).message, where, 'invalid_image');
  }
  if (img.width * img.height > limits.maxImagePixels) {
    throw new ApiError(400, `${where}: image of ${img.width}x${img.height} pixels is over the limit of ${limits.maxImagePixels}`, where, 'image_too_large');
  }
  return img;
}

/** The images of the messages in order (the order of their placeholders in the prompt). */
export async function loadMessageImages(messages: ChatMessage[], limits: ImageLimits): Promise<RgbImage[]> {
  const refs: { url: string; where: string }[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((p, j) => {
      if (p.type === 'image') refs.push({ url: p.url as string, where: `messages[${i}].content[${j}]` });
    });
  });
  if (refs.length > limits.maxImagesPerRequest) {
    throw new ApiError(400, `${refs.length} images in one request, the limit is ${limits.maxImagesPerRequest}`, 'messages');
  }
  const out: RgbImage[] = [];
  for (const r of refs) out.push(await loadOne(r.url, limits, r.where));
  return out;
}
