// The server's generation loop: one running batch that requests join and leave between decode steps (continuous
// batching, as vLLM does). Requests wait in arrival order (FIFO); at each step, while the batch has fewer than
// maxBatch rows, the waiting ones are prefilled together as a step of their own and their rows appended to the
// running batch's KV cache (the shorter side left-padded, generation/generate.ts appendRows). A row that finishes or whose
// client disconnects is gathered out before the next decode step, so its memory goes at once (keepRows).
import { DecodeState, appendRows, decodeOne, keepRows, prefill } from '../generation/generate';
import { EngineParts, Job, Row, batchInputs } from './rows';

export type { EngineParts, FinishReason, Job, Pixels } from './rows';
export { StopMatcher } from './rows';

/** Lets sockets, timers and new requests in between two steps (tfjs promises resolve as microtasks). */
const yieldToIo = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The rows generating now, their decode state, and each row's logits for its next token. */
interface Running {
  rows: Row[];
  state: DecodeState;
  logits: Float32Array[];
}

export class Scheduler {
  private readonly queue: Job[] = [];
  private running: Running | null = null;
  private loop: Promise<void> | null = null;
  /** rows prefilled together at each admission (for the load measurements) */
  readonly admissions: number[] = [];
  /** the most rows the running batch has held */
  peakRows = 0;
  /** test hook: called after every decode step with the rows that took it */
  onStep: ((rows: number) => void) | null = null;

  constructor(private readonly parts: EngineParts, private readonly maxBatch: number) {}

  get waiting(): number {
    return this.queue.length;
  }

  /** rows in the running batch */
  get rows(): number {
    return this.running?.rows.length ?? 0;
  }

  submit(job: Job): void {
    this.queue.push(job);
    this.start();
  }

  private start(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      if (this.queue.length) this.start(); // a job that came in as the loop was ending
    });
  }

  /** A job that has not started leaves the queue at once; a running one leaves its batch at the next step. */
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
    while (this.loop) await this.loop;
  }

  private async run(): Promise<void> {
    await yieldToIo(); // requests arriving together are prefilled together
    while (this.queue.length || this.running) {
      await this.admit();
      const b = this.running;
      if (!b) continue;
      const tokens = this.step(b);
      if (!tokens.length) continue;
      await yieldToIo();
      await this.decode(b, tokens);
    }
  }

  /** Prefills the jobs waiting (up to the free rows) as one step and appends their rows to the running batch. */
  private async admit(): Promise<void> {
    const free = this.maxBatch - this.rows;
    if (!this.queue.length || free <= 0) return;
    const jobs = this.queue.splice(0, free);
    const inputs = batchInputs(jobs, this.parts.padTokenId);
    const rows = jobs.map((j) => new Row(j, this.parts));
    this.admissions.push(jobs.length);
    try {
      const { logits, state } = await prefill(this.parts.model, inputs);
      if (!this.running) this.running = { rows, state, logits };
      else {
        appendRows(this.running.state, state);
        this.running.rows.push(...rows);
        this.running.logits.push(...logits);
      }
      this.peakRows = Math.max(this.peakRows, this.rows);
    } catch (e) {
      for (const r of rows) r.fail(e); // only the jobs of this prefill: the running rows go on
    } finally {
      inputs.pixelValues?.dispose();
      inputs.pixelValuesVideos?.dispose();
    }
  }

  /** pickTokens, ending the batch if a row's callbacks throw; [] when no row goes on */
  private step(b: Running): number[] {
    try {
      return this.pickTokens(b);
    } catch (e) {
      for (const r of b.rows) r.fail(e);
      this.end();
      return [];
    }
  }

  /** Every row takes its next token; rows that end (or whose client left) are gathered out of the batch. */
  private pickTokens(b: Running): number[] {
    for (const r of b.rows) if (r.job.aborted) r.finish('abort');
    const tokens = b.rows.map((r, i) => (r.done ? this.parts.padTokenId : r.pick(b.logits[i]!)));
    b.rows.forEach((r, i) => r.done || r.accept(tokens[i]!));
    const keep = b.rows.flatMap((r, i) => (r.done ? [] : [i]));
    if (keep.length === b.rows.length) return tokens;
    if (!keep.length) {
      this.end();
      return [];
    }
    keepRows(b.state, keep);
    b.rows = keep.map((i) => b.rows[i]!);
    return keep.map((i) => tokens[i]!);
  }

  private async decode(b: Running, tokens: number[]): Promise<void> {
    try {
      b.logits = await decodeOne(this.parts.model, tokens, b.state);
      this.onStep?.(b.rows.length);
    } catch (e) {
      for (const r of b.rows) r.fail(e);
      this.end();
    }
  }

  private end(): void {
    this.running?.state.cache.dispose();
    this.running = null;
  }
}
