// `glm46v serve`: an OpenAI-compatible HTTP server (GET /v1/models, POST /v1/chat/completions, GET /health).
// HTTP layer: node:http. The API is three routes, JSON in and JSON or Server-Sent Events out, and what matters is
// control over each response stream (client disconnects, no awaiting a slow reader, body size limits): node:http
// gives that directly and adds no dependency, where a framework (express, fastify) would add one for routing we
// do not need.
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import type { GenerateOptions } from '../generation/generate';
import { readGenerationConfig } from '../generation/generation_config';
import { makeSampler } from '../generation/sampling';
import { loadModel } from '../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../models/glm4v/model';
import { ProcessorError } from '../processors/errors';
import { Glm46VImageProcessor } from '../processors/image_processor';
import { Glm4vVideoProcessor, loadVideoProcessor } from '../processors/video_processor';
import type { RgbImage } from '../processors/image_io';
import type { VideoProcessorOutput } from '../processors/video_processor';
import { Glm4vProcessor, ProcessorOutput, loadProcessor } from '../processors/processor';
import { readModelJson } from '../processors/tokenizer';
import { ToolCallParser } from '../processors/tool_parser';
import { Completion, CompletionSink, Usage } from './completion';
import { ApiError, asApiError } from './errors';
import { loadMessageImages } from './images';
import { ChatRequest, parseChatRequest } from './request';
import { FinishReason, Job, Scheduler } from './scheduler';
import { VideoLimits, loadMessageVideos } from './videos';

export interface ServeOptions extends Partial<VideoLimits> {
  /** Hugging Face model folder */
  modelDir: string;
  /** the id clients name in `model` (default: the folder's name) */
  modelName?: string;
  /** most requests generating together in the running batch; later ones wait in arrival order (default 32) */
  maxBatch?: number;
  /** largest request body in bytes (default 20 MiB) */
  maxBodyBytes?: number;
  /** max_tokens when a request gives none (default 512, and never past the context) */
  defaultMaxTokens?: number;
  /** one line per request (default: stderr) */
  log?: (line: string) => void;
  /** test hook: a text to generate for a rendered prompt instead of sampling (the model still runs); undefined samples */
  script?: (prompt: string) => string | undefined;
}

/** Token markup the tool and reasoning parser reads; other special tokens are left out of the text. */
const VISIBLE_SPECIAL = new Set(['<think>', '</think>', '<tool_call>', '</tool_call>', '<arg_key>', '</arg_key>', '<arg_value>', '</arg_value>']);

function hiddenIds(dir: string): Set<number> {
  const added = readModelJson(dir, 'tokenizer.json').added_tokens;
  const out = new Set<number>();
  if (!Array.isArray(added)) return out;
  for (const t of added as { id: number; content: string; special: boolean }[]) if (t.special && !VISIBLE_SPECIAL.has(t.content)) out.add(t.id);
  return out;
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) return reject(new ApiError(413, `request body of ${declared} bytes is over the limit of ${limit}`, null, 'request_too_large'));
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) {
        reject(new ApiError(413, `request body over the limit of ${limit} bytes`, null, 'request_too_large'));
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return void res.end();
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export class GlmServer {
  readonly http: http.Server;
  readonly scheduler: Scheduler;
  readonly modelName: string;
  private readonly contextLength: number;
  private readonly log: (line: string) => void;
  private readonly limits: VideoLimits;
  private readonly generation: GenerateOptions;

  constructor(
    readonly model: Glm4vForConditionalGeneration,
    readonly processor: Glm4vProcessor,
    private readonly opts: ServeOptions,
    private readonly videoProcessor: Glm4vVideoProcessor | null = null,
  ) {
    this.modelName = opts.modelName ?? path.basename(path.resolve(opts.modelDir));
    this.contextLength = model.config.text_config.max_position_embeddings;
    this.log = opts.log ?? ((line) => process.stderr.write(line + '\n'));
    this.limits = {
      maxImageBytes: opts.maxImageBytes ?? 10 * 2 ** 20,
      maxImagePixels: opts.maxImagePixels ?? 4096 * 4096,
      maxImagesPerRequest: opts.maxImagesPerRequest ?? 8,
      fetchTimeoutMs: opts.fetchTimeoutMs ?? 10_000,
      maxVideoBytes: opts.maxVideoBytes ?? 20 * 2 ** 20,
      maxVideosPerRequest: opts.maxVideosPerRequest ?? 1,
      ...(opts.allowFiles ? { allowFiles: opts.allowFiles } : {}),
      ...(opts.ffmpegPath !== undefined ? { ffmpegPath: opts.ffmpegPath } : {}),
    };
    const gen = this.generation = readGenerationConfig(opts.modelDir);
    const hidden = hiddenIds(opts.modelDir);
    this.scheduler = new Scheduler({
      model,
      decode: (ids) => processor.decode(ids.filter((i) => !hidden.has(i))),
      eosTokenIds: gen.eosTokenId ?? model.config.eos_token_id,
      padTokenId: gen.padTokenId ?? processor.tokenizer.padTokenId ?? 0,
    }, opts.maxBatch ?? 32);
    this.http = http.createServer((req, res) => void this.handle(req, res));
  }

  /** Listens (port 0: an ephemeral port) and resolves to the base URL, e.g. http://127.0.0.1:8000. */
  listen(port = 8000, host = '127.0.0.1'): Promise<string> {
    return new Promise((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        const a = this.http.address() as AddressInfo;
        resolve(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
      });
    });
  }

  /** Stops accepting, ends open connections, waits for the running batch; does not dispose the model. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
    await this.scheduler.idle();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const t0 = performance.now();
    const url = (req.url ?? '/').split('?')[0]!;
    // one line per request, once both the response has closed and its generation (if any) has ended
    let usage: Usage | null = null;
    let note = '';
    let generating = false;
    let closed = false;
    const logLine = () => {
      const tokens = usage ? ` prompt_tokens=${usage.prompt_tokens} completion_tokens=${usage.completion_tokens}` : '';
      const aborted = res.writableFinished ? '' : ' client_closed';
      this.log(`${req.method} ${url} ${res.statusCode}${tokens} ms=${(performance.now() - t0).toFixed(0)}${note}${aborted}`);
    };
    res.on('close', () => {
      closed = true;
      if (!generating) logLine();
    });
    try {
      if (url === '/health' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
      if (url === '/v1/models' && req.method === 'GET') return sendJson(res, 200, this.models());
      if (url === '/v1/chat/completions' && req.method === 'POST') {
        await this.chat(req, res, () => { generating = true; }, (u, n) => {
          usage = u;
          note = n;
          generating = false;
          if (closed) logLine();
        });
        return;
      }
      const known = ['/health', '/v1/models', '/v1/chat/completions'].includes(url);
      throw new ApiError(known ? 405 : 404, known ? `${req.method} is not allowed on ${url}` : `no route ${req.method} ${url}`);
    } catch (e) {
      const err = asApiError(e);
      if (err.status === 500) note = ` error=${JSON.stringify((e as Error)?.message ?? String(e))}`;
      sendJson(res, err.status, err.toJSON());
    }
  }

  private models(): unknown {
    return { object: 'list', data: [{ id: this.modelName, object: 'model', created: 0, owned_by: 'glm46v', max_model_len: this.contextLength }] };
  }

  /** Parses, renders and tokenizes a request, then waits for its generation; resolves to its usage. */
  private async chat(req: http.IncomingMessage, res: http.ServerResponse, onStart: () => void, onEnd: (u: Usage, note: string) => void): Promise<void> {
    const raw = await readBody(req, this.opts.maxBodyBytes ?? 20 * 2 ** 20);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
    }
    const r = parseChatRequest(body);
    if (r.model !== this.modelName) throw new ApiError(404, `the model ${JSON.stringify(r.model)} does not exist; this server has ${JSON.stringify(this.modelName)}`, 'model', 'model_not_found');
    const images = await loadMessageImages(r.messages, this.limits);
    const videos = await loadMessageVideos(r.messages, this.videoProcessor, this.limits);
    const { prompt, enc } = this.encode(r, images, videos);
    const promptTokens = enc.inputIds[0]!.length;
    const room = this.contextLength - promptTokens;
    if (room < 1 || (r.maxTokens !== undefined && r.maxTokens > room)) {
      const asked = r.maxTokens === undefined ? '' : ` and ${r.maxTokens} for the completion`;
      throw new ApiError(400, `this model's context is ${this.contextLength} tokens; the messages take ${promptTokens}${asked}`, 'messages', 'context_length_exceeded');
    }
    if (res.destroyed) return;
    onStart();
    return new Promise<void>((resolve) => {
      const parser = new ToolCallParser({ tools: r.tools, parseTools: r.toolChoice === 'auto' && r.tools !== null, startInReasoning: /<think>\s*$/.test(prompt) });
      const completion = new Completion(this.modelName, parser, r.stream, r.includeUsage, promptTokens, this.sink(res, r.stream, (u, reason) => {
        onEnd(u, reason === 'stop' ? '' : ` finish=${reason}`);
        resolve();
      }));
      const job = this.job(r, prompt, enc, completion);
      res.on('close', () => {
        if (!res.writableFinished) this.scheduler.cancel(job);
      });
      this.scheduler.submit(job);
    });
  }

  private encode(r: ChatRequest, images: RgbImage[], videos: VideoProcessorOutput | null): { prompt: string; enc: ProcessorOutput } {
    try {
      const prompt = this.processor.applyChatTemplate(r.messages.map(withoutUrls), {
        addGenerationPrompt: true,
        ...(r.tools ? { tools: r.tools } : {}),
        extra: r.templateKwargs,
      });
      return { prompt, enc: this.processor.call({ text: [prompt], ...(images.length ? { images } : {}), ...(videos ? { videos } : {}) }) };
    } catch (e) {
      if (e instanceof ProcessorError) throw new ApiError(400, e.message, 'messages');
      throw e;
    }
  }

  private job(r: ChatRequest, prompt: string, enc: ProcessorOutput, c: Completion): Job {
    const gen = this.generation;
    const promptTokens = enc.inputIds[0]!.length;
    const scripted = this.opts.script?.(prompt);
    const job: Job = {
      inputIds: enc.inputIds[0]!,
      maxTokens: r.maxTokens ?? Math.min(this.opts.defaultMaxTokens ?? 512, this.contextLength - promptTokens),
      sampler: makeSampler({
        ...gen,
        ...(r.temperature !== undefined ? { temperature: r.temperature } : {}),
        ...(r.topP !== undefined ? { topP: r.topP } : {}),
        ...(r.seed !== undefined ? { seed: r.seed } : {}),
      }),
      stop: r.stop,
      aborted: false,
      onText: (d) => c.text(d),
      onDone: (reason, n) => c.done(reason, n),
      onError: (e) => c.error(e),
    };
    if (scripted !== undefined) job.scripted = this.processor.tokenizer.encode(scripted, { addSpecialTokens: false });
    if (enc.pixelValues) job.images = { data: enc.pixelValues, shape: enc.pixelValuesShape!, gridThw: enc.imageGridThw! };
    if (enc.pixelValuesVideos) job.videos = { data: enc.pixelValuesVideos, shape: enc.pixelValuesVideosShape!, gridThw: enc.videoGridThw! };
    return job;
  }

  /** Where a completion's output goes: SSE chunks on the response, or one JSON body at the end. */
  private sink(res: http.ServerResponse, stream: boolean, ended: (u: Usage, reason: FinishReason | 'error') => void): CompletionSink {
    const writeEvent = (data: string) => {
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
      if (!res.destroyed) res.write(`data: ${data}\n\n`); // never awaits drain: a slow reader only buffers its own text
    };
    return {
      chunk: (obj) => stream && writeEvent(JSON.stringify(obj)),
      end: (obj, usage, reason) => {
        ended(usage, reason);
        if (reason === 'abort' || res.destroyed) return void res.end();
        if (stream) {
          writeEvent('[DONE]');
          return void res.end();
        }
        if (obj instanceof ApiError) return sendJson(res, obj.status, obj.toJSON());
        sendJson(res, 200, obj);
      },
    };
  }
}

/** Image and video parts reach the template as bare {type: 'image'} / {type: 'video'}: the pixels travel separately. */
function withoutUrls(m: ChatRequest['messages'][number]): ChatRequest['messages'][number] {
  if (!Array.isArray(m.content)) return m;
  return { ...m, content: m.content.map((p) => (p.type === 'image' || p.type === 'video' ? { type: p.type } : p)) };
}

/** The folder's video processor, or null when it has none (its requests with videos are refused). */
function videoProcessorOf(dir: string): Glm4vVideoProcessor | null {
  try {
    return loadVideoProcessor(dir);
  } catch {
    return null;
  }
}

/** Loads the model and processor of `opts.modelDir` (the backend must be initialised) and builds the server. */
export function createServer(opts: ServeOptions): GlmServer {
  const processor = loadProcessor(opts.modelDir, Glm46VImageProcessor.fromPretrained(opts.modelDir));
  return new GlmServer(loadModel(opts.modelDir), processor, opts, videoProcessorOf(opts.modelDir));
}
