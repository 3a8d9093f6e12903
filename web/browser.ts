// The package in the browser (bundled by scripts/web/build.mjs): models fetched from URLs into a MemorySource that
// the same readers as in Node read (lib/byte_source.ts), images decoded by processors/image_io.ts, the tokenizer and
// chat template as in Node, and the webgpu backend where the browser offers one, else wasm.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { MemorySource, useByteSource } from '../lib/byte_source';
import { setDeviceLimits } from '../lib/device_limits';
import { installKernelOverrides } from '../lib/kernels';
import { installWebGpuFixes } from '../lib/kernels/webgpu_fixes';
import { readAllSafetensors } from '../lib/safetensors';
import { formatParity, runParity } from '../cli/parity_runner';
import { generateGreedy } from '../cli/parity_generate';
import type { GenerateOptions } from '../generation/generate';
import { readGenerationConfig } from '../generation/generation_config';
import { streamGenerate } from '../generation/streaming';
import { loadModel } from '../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../models/glm4v/model';
import { decodeImage, RgbImage } from '../processors/image_io';
import { Glm46VImageProcessor } from '../processors/image_processor';
import { asModelInputs, Glm4vProcessor, loadProcessor } from '../processors/processor';

export { decodeImage, tf };

const source = new MemorySource();
useByteSource(source);

export type Progress = (file: string, loaded: number, total: number) => void;

/** Fetches `url` into the byte source under `key`, reporting bytes as they arrive; a non-2xx answer is an error naming the URL. */
export async function fetchFile(url: string, key: string, onProgress?: Progress): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`.trim());
  const total = Number(res.headers.get('content-length') ?? 0);
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    onProgress?.(key, loaded, total || loaded);
  }
  const bytes = new Uint8Array(loaded);
  let off = 0;
  for (const p of parts) (bytes.set(p, off), (off += p.length));
  source.set(key, bytes);
  return bytes;
}

const REQUIRED = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];
const OPTIONAL = ['generation_config.json', 'preprocessor_config.json', 'video_preprocessor_config.json', 'chat_template.jinja', 'chat_template.json'];

/** An optional file: absent (404) is fine, any other failure is not. */
async function fetchOptional(url: string, key: string, onProgress?: Progress): Promise<void> {
  const head = await fetch(url, { method: 'HEAD' });
  if (head.status === 404) return;
  await fetchFile(url, key, onProgress);
}

/**
 * Fetches a Hugging Face model folder served at `baseUrl` into the byte source under `dir`: its configs, tokenizer,
 * template and weights (model.safetensors, or the shards model.safetensors.index.json names). Returns `dir`.
 */
export async function fetchModel(baseUrl: string, dir: string, onProgress?: Progress): Promise<string> {
  const url = (f: string) => `${baseUrl.replace(/\/$/, '')}/${f}`;
  await Promise.all(REQUIRED.map((f) => fetchFile(url(f), `${dir}/${f}`, onProgress)));
  await Promise.all(OPTIONAL.map((f) => fetchOptional(url(f), `${dir}/${f}`, onProgress)));
  const index = await fetch(url('model.safetensors.index.json'));
  if (index.ok) {
    const bytes = new Uint8Array(await index.arrayBuffer());
    source.set(`${dir}/model.safetensors.index.json`, bytes);
    const map = (JSON.parse(new TextDecoder().decode(bytes)) as { weight_map?: Record<string, string> }).weight_map ?? {};
    for (const shard of new Set(Object.values(map))) await fetchFile(url(shard), `${dir}/${shard}`, onProgress);
  } else {
    await fetchFile(url('model.safetensors'), `${dir}/model.safetensors`, onProgress);
  }
  return dir;
}

/** Why webgpu cannot run here, or null when it can. */
async function webgpuUnavailable(): Promise<string | null> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return 'this browser has no navigator.gpu (WebGPU is off or unsupported)';
  const adapter = await gpu.requestAdapter().catch(() => null);
  return adapter ? null : 'navigator.gpu.requestAdapter() found no GPU adapter';
}

export interface BackendChoice {
  name: 'webgpu' | 'wasm';
  /** why webgpu was passed over */
  why?: string;
}

/** webgpu where the browser offers it, else wasm (its .wasm files from `wasmPath`); `only` forces one. */
export async function initBackend(wasmPath: string, only?: 'webgpu' | 'wasm'): Promise<BackendChoice> {
  setWasmPaths(wasmPath);
  tf.enableProdMode();
  let why: string | undefined;
  if (only !== 'wasm') {
    why = (await webgpuUnavailable()) ?? undefined;
    if (!why && (await tf.setBackend('webgpu').catch(() => false))) return ready('webgpu');
    why ??= 'tf.setBackend("webgpu") failed';
    if (only === 'webgpu') throw new Error(`webgpu is not available: ${why}`);
  }
  if (!(await tf.setBackend('wasm'))) throw new Error(`the wasm backend did not start (its .wasm files from ${wasmPath})`);
  return { ...(await ready('wasm')), ...(why ? { why } : {}) };
}

async function ready(name: 'webgpu' | 'wasm'): Promise<BackendChoice> {
  await tf.ready();
  installKernelOverrides(name);
  if (name === 'webgpu') {
    // the same kernel fixes and binding limits as Dawn in Node (lib/webgpu.ts): masked softmax rows, broadcast matMul
    installWebGpuFixes();
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    setDeviceLimits({ backend: 'webgpu', device: 'browser', maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize, maxBufferSize: device.limits.maxBufferSize });
  }
  return { name };
}

/** A loaded model and its processor, from a folder fetched by `fetchModel`. */
export interface Session {
  dir: string;
  model: Glm4vForConditionalGeneration;
  processor: Glm4vProcessor<RgbImage>;
}

export function openSession(dir: string): Session {
  const processor = loadProcessor<RgbImage>(dir, Glm46VImageProcessor.fromPretrained(dir));
  return { dir, model: loadModel(dir), processor };
}

export interface AnswerStats {
  tokens: number;
  prefillMs: number;
  tokensPerSecond: number;
}

/** Streams the answer to `question` about `images` (greedy unless the folder's generation_config says otherwise). */
export async function answer(s: Session, images: RgbImage[], question: string, onText: (delta: string) => void, maxNewTokens = 64): Promise<AnswerStats> {
  const content = [...images.map(() => ({ type: 'image' as const })), { type: 'text' as const, text: question }];
  const text = s.processor.applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true });
  const inputs = asModelInputs(s.processor.call({ text: [text], ...(images.length ? { images } : {}) }));
  const opts: GenerateOptions = { ...readGenerationConfig(s.dir), maxNewTokens };
  const decode = (ids: number[]) => s.processor.decode(ids, { skipSpecialTokens: true });
  const t0 = performance.now();
  let tFirst = t0, n = 0;
  try {
    for await (const { text: [delta] } of streamGenerate(s.model, inputs, decode, opts)) {
      if (n++ === 0) tFirst = performance.now();
      onText(delta!);
    }
  } finally {
    tf.dispose([inputs.pixelValues].filter((t): t is tf.Tensor2D => t !== undefined));
  }
  const secs = (performance.now() - tFirst) / 1000;
  return { tokens: n, prefillMs: tFirst - t0, tokensPerSecond: n > 1 ? (n - 1) / secs : 0 };
}

/** Pixel values of one image as the processor gives them (for comparing with Node's bit for bit). */
export function pixelValues(s: Session, image: RgbImage): Float32Array {
  return s.processor.call({ text: ['<|begin_of_image|><|image|><|end_of_image|>'], images: [image] }).pixelValues!;
}

/**
 * `glm46v parity` in the page: fetches a reference file and the model folder its metadata names (relative to the
 * file's URL), runs every comparison and returns the lines the command prints.
 */
export async function parity(refUrl: string, opts: { atol?: number; rtol?: number } = {}, onProgress?: Progress): Promise<string[]> {
  const key = `ref/${refUrl.split('/').pop()}`;
  await fetchFile(refUrl, key, onProgress);
  const { tensors, metadata } = readAllSafetensors(key);
  if (!metadata.model) throw new Error(`${refUrl} names no model in its metadata`);
  const modelUrl = new URL(metadata.model, new URL(refUrl, location.href)).href;
  const dir = await fetchModel(modelUrl, `models/${new URL(modelUrl).pathname}`, onProgress);
  const model = loadModel(dir);
  const atol = opts.atol ?? 1e-4, rtol = opts.rtol ?? 0;
  try {
    return formatParity(await runParity(model, tensors, { atol, rtol, generate: generateGreedy }), atol, rtol);
  } finally {
    model.dispose();
  }
}
