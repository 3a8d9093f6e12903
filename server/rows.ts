// One request inside the server's running batch: its job (what the HTTP layer asked for), its stop strings, its
// text stream; and the model inputs of a group of jobs prefilled together.
import * as tf from '@tensorflow/tfjs';
import { Sampler } from '../generation/sampling';
import { TextStreamer } from '../generation/streaming';
import type { CausalLmInputs, Glm4vForConditionalGeneration } from '../models/glm4v/model';

export type FinishReason = 'stop' | 'length' | 'abort';

/** Pixels of a request's images or videos, as the processor gives them ([N, C*T*P*P] and one grid per item). */
export interface Pixels {
  data: Float32Array;
  shape: number[];
  gridThw: number[][];
}

/** One request's generation, prepared by the HTTP layer. */
export interface Job {
  /** prompt token ids, images and videos expanded */
  inputIds: number[];
  images?: Pixels;
  videos?: Pixels;
  maxTokens: number;
  sampler: Sampler;
  stop: string[];
  /** test hook: these token ids are generated instead of sampled ones (the model still runs), then a stop id */
  scripted?: number[];
  /** set by the HTTP layer when the client goes away; the row leaves the batch at the next step */
  aborted: boolean;
  onText(delta: string): void;
  onDone(reason: FinishReason, completionTokens: number): void;
  onError(e: unknown): void;
}

export interface EngineParts {
  model: Glm4vForConditionalGeneration;
  /** token ids -> text, keeping the tool and reasoning markup */
  decode: (ids: number[]) => string;
  eosTokenIds: number[];
  padTokenId: number;
}

/**
 * Holds back text that may be the start of a stop string; once a stop string appears, the text before it is the
 * last to go out. (OpenAI's `stop`: the stop string itself is not returned.)
 */
export class StopMatcher {
  private held = '';
  stopped = false;

  constructor(private readonly stops: string[]) {}

  push(text: string): string {
    if (this.stopped) return '';
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.held.slice(0, cut);
      this.held = '';
      return out;
    }
    let keep = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.held.length); n > keep; n--) if (this.held.endsWith(s.slice(0, n))) keep = n;
    }
    const out = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return out;
  }

  flush(): string {
    const out = this.held;
    this.held = '';
    return out;
  }
}

/** A row of the running batch. */
export class Row {
  done = false;
  generated = 0;
  private readonly seen: number[];
  private readonly streamer: TextStreamer;
  private readonly stopper: StopMatcher;

  constructor(readonly job: Job, private readonly parts: EngineParts) {
    this.seen = [...job.inputIds];
    this.streamer = new TextStreamer(parts.decode);
    this.stopper = new StopMatcher(job.stop);
  }

  pick(logits: Float32Array): number {
    const s = this.job.scripted;
    if (s) return s[this.generated] ?? this.parts.eosTokenIds[0]!;
    return this.job.sampler(logits, this.seen);
  }

  /** Takes the row's new token: emits its text, and ends the row on a stop id, a stop string or the budget. */
  accept(token: number): void {
    this.generated += 1;
    this.seen.push(token);
    if (this.parts.eosTokenIds.includes(token)) return this.finish('stop');
    const text = this.stopper.push(this.streamer.push(token));
    if (text) this.job.onText(text);
    if (this.stopper.stopped) return this.finish('stop');
    if (this.generated >= this.job.maxTokens) this.finish('length');
  }

  finish(reason: FinishReason): void {
    if (this.done) return;
    this.done = true;
    if (reason !== 'abort') {
      const rest = this.stopper.flush();
      if (rest) this.job.onText(rest);
    }
    this.job.onDone(reason, this.generated);
  }

  /** Ends the row with an error (the model failed), unless it has ended already. */
  fail(e: unknown): void {
    if (this.done) return;
    this.done = true;
    this.job.onError(e);
  }
}

/** The jobs' pixels of one kind concatenated in row order (the order of their placeholders in the batch). */
function concatPixels(all: Pixels[]): { pixels: tf.Tensor2D; grids: number[][] } | null {
  if (!all.length) return null;
  const width = all[0]!.shape[1]!;
  const rows = all.reduce((n, p) => n + p.shape[0]!, 0);
  const data = new Float32Array(rows * width);
  let at = 0;
  for (const p of all) {
    data.set(p.data, at);
    at += p.data.length;
  }
  return { pixels: tf.tensor2d(data, [rows, width]), grids: all.flatMap((p) => p.gridThw) };
}

/** The model inputs of jobs prefilled together: left-padded to one length, images and videos concatenated. */
export function batchInputs(jobs: Job[], padId: number): CausalLmInputs {
  const L = Math.max(...jobs.map((j) => j.inputIds.length));
  const inputIds = jobs.map((j) => [...new Array<number>(L - j.inputIds.length).fill(padId), ...j.inputIds]);
  const attentionMask = jobs.map((j) => [...new Array<number>(L - j.inputIds.length).fill(0), ...j.inputIds.map(() => 1)]);
  const inputs: CausalLmInputs = { inputIds, attentionMask };
  const images = concatPixels(jobs.flatMap((j) => (j.images ? [j.images] : [])));
  if (images) Object.assign(inputs, { pixelValues: images.pixels, imageGridThw: images.grids });
  const videos = concatPixels(jobs.flatMap((j) => (j.videos ? [j.videos] : [])));
  if (videos) Object.assign(inputs, { pixelValuesVideos: videos.pixels, videoGridThw: videos.grids });
  return inputs;
}
