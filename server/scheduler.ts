// The server's generation queue: requests wait in arrival order (FIFO, so fair) and start together as one
// left-padded batch (up to maxBatch rows). Up to maxRunning batches run at once, their decode steps interleaved on
// the event loop, so a long generation does not hold back a short one that arrives after it; a batch cannot take
// new rows once started (its KV cache has one length for all rows). On lib/generate.ts prefill/decodeOne with one
// sampler, stop set and token budget per row.
import * as tf from '@tensorflow/tfjs';
import { DecodeState, decodeOne, prefill } from '../lib/generate';
import { Sampler } from '../lib/sampling';
import { TextStreamer } from '../lib/streaming';
import type { CausalLmInputs, Glm4vForConditionalGeneration } from '../models/glm4v/model';

export type FinishReason = 'stop' | 'length' | 'abort';

/** One request's generation, prepared by the HTTP layer. */
export interface Job {
  /** prompt token ids, images expanded */
  inputIds: number[];
  /** the prompt's image patches [N, C*T*P*P] and grids, if it has images */
  pixelValues?: Float32Array;
  pixelValuesShape?: number[];
  imageGridThw?: number[][];
  maxTokens: number;
  sampler: Sampler;
  stop: string[];
  /** test hook: these token ids are generated instead of sampled ones (the model still runs), then a stop id */
  scripted?: number[];
  /** set by the HTTP layer when the client goes away; the row stops at the next step */
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
class Row {
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

  pick(logits: Float32Array | undefined): number {
    const s = this.job.scripted;
    if (s) return s[this.generated] ?? this.parts.eosTokenIds[0]!;
    return this.job.sampler(logits!, this.seen);
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
}

/** The batch's model inputs: rows left-padded to one length, image patches concatenated in row order. */
function batchInputs(jobs: Job[], padId: number): CausalLmInputs {
  const L = Math.max(...jobs.map((j) => j.inputIds.length));
  const inputIds = jobs.map((j) => [...new Array<number>(L - j.inputIds.length).fill(padId), ...j.inputIds]);
  const attentionMask = jobs.map((j) => [...new Array<number>(L - j.inputIds.length).fill(0), ...j.inputIds.map(() => 1)]);
  const inputs: CausalLmInputs = { inputIds, attentionMask };
  const withImages = jobs.filter((j) => j.pixelValues);
  if (withImages.length) {
    const width = withImages[0]!.pixelValuesShape![1]!;
    const rows = withImages.reduce((n, j) => n + j.pixelValuesShape![0]!, 0);
    const data = new Float32Array(rows * width);
    let at = 0;
    for (const j of withImages) {
      data.set(j.pixelValues!, at);
      at += j.pixelValues!.length;
    }
    inputs.pixelValues = tf.tensor2d(data, [rows, width]);
    inputs.imageGridThw = withImages.flatMap((j) => j.imageGridThw!);
  }
  return inputs;
}

/** Lets sockets, timers and new requests in between two decode steps (tfjs promises resolve as microtasks). */
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs one batch to its end; every row's job hears onText/onDone, or onError if the model fails. */
export async function runBatch(parts: EngineParts, jobs: Job[]): Promise<void> {
  const rows = jobs.map((j) => new Row(j, parts));
  const inputs = batchInputs(jobs, parts.padTokenId);
  let state: DecodeState | undefined;
  try {
    const first = await prefill(parts.model, inputs);
    state = first.state;
    let logits = first.logits;
    for (;;) {
      for (const r of rows) if (!r.done && r.job.aborted) r.finish('abort');
      const next = rows.map((r, b) => (r.done ? parts.padTokenId : r.pick(logits[b])));
      rows.forEach((r, b) => r.done || r.accept(next[b]!));
      if (rows.every((r) => r.done)) break;
      await yieldToIo();
      logits = await decodeOne(parts.model, next, state);
    }
  } catch (e) {
    for (const r of rows) {
      if (r.done) continue;
      r.done = true;
      r.job.onError(e);
    }
  } finally {
    state?.cache.dispose();
    inputs.pixelValues?.dispose();
  }
}

/** FIFO queue in front of runBatch: whenever fewer than maxRunning batches run, everything waiting starts as one. */
export class Scheduler {
  private readonly queue: Job[] = [];
  private running = 0;
  private starting = false;
  /** batches run so far and their sizes (for the load measurements) */
  readonly batchSizes: number[] = [];

  constructor(private readonly parts: EngineParts, private readonly maxBatch: number, private readonly maxRunning = 4) {}

  get waiting(): number {
    return this.queue.length;
  }

  submit(job: Job): void {
    this.queue.push(job);
    void this.pump();
  }

  /** A job that has not started leaves the queue at once; a running one stops at its batch's next step. */
  cancel(job: Job): void {
    job.aborted = true;
    const i = this.queue.indexOf(job);
    if (i >= 0) {
      this.queue.splice(i, 1);
      job.onDone('abort', 0);
    }
  }

  /** Resolves once nothing runs or waits. */
  async idle(): Promise<void> {
    while (this.running || this.queue.length) await new Promise((r) => setTimeout(r, 5));
  }

  private async pump(): Promise<void> {
    if (this.starting) return;
    this.starting = true;
    await yieldToIo(); // requests arriving together start together
    this.starting = false;
    while (this.queue.length && this.running < this.maxRunning) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.batchSizes.push(batch.length);
      this.running += 1;
      void runBatch(this.parts, batch).finally(() => {
        this.running -= 1;
        void this.pump();
      });
    }
  }
}
