// A killable child process for the fuzzer: one input at a time, a wall-clock limit per input (a hang is reported
// and the child replaced, not waited for) and a bound on its peak RSS (past it the input is reported and the
// child replaced, since a peak cannot be attributed to later inputs).
import { ChildProcess, fork } from 'child_process';
import * as path from 'path';
import type { WorkerReply, WorkerRequest } from './worker';
import type { Outcome } from './targets';

export interface PoolOptions {
  /** per-input limit, ms */
  timeoutMs: number;
  /** peak RSS bound of a child, MiB */
  memoryMb: number;
}

export interface ChildResult {
  outcome: Outcome;
  detail: string;
  ms: number;
  maxRssKb: number;
}

type Pending = { id: number; resolve: (r: ChildResult) => void; timer: NodeJS.Timeout };

export class FuzzChild {
  private child: ChildProcess | undefined;
  private ready: Promise<void> | undefined;
  private pending: Pending | undefined;
  private nextId = 0;
  private stderr = '';
  /** the highest maxRSS any child of this slot reported, KiB */
  peakRssKb = 0;
  restarts = 0;

  constructor(private readonly opts: PoolOptions) {}

  private start(): Promise<void> {
    // The V8 heap limit sits a little above the bound, so that a runaway JS heap ends in an exit we report too.
    const child = fork(path.join(__dirname, 'worker.ts'), [], {
      execArgv: ['--require', require.resolve('tsx/cjs'), `--max-old-space-size=${this.opts.memoryMb + 256}`, '--stack-size=984'],
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    this.child = child;
    this.stderr = '';
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-2000)));
    child.on('exit', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      this.ready = undefined;
      const lastLine = this.stderr.trim().split('\n').filter((l) => l.trim()).pop() ?? '';
      this.settle({ outcome: 'crash', detail: `child process exited (code ${code}, signal ${signal}) ${lastLine}`.trim(), ms: 0, maxRssKb: 0 });
    });
    return new Promise((resolve, reject) => {
      child.once('message', () => resolve());
      child.once('error', reject);
      child.on('message', (m: WorkerReply | { ready: true }) => {
        if ('id' in m && this.pending?.id === m.id) this.onReply(m);
      });
    });
  }

  private onReply(m: WorkerReply): void {
    this.peakRssKb = Math.max(this.peakRssKb, m.maxRssKb);
    if (m.maxRssKb > this.opts.memoryMb * 1024) {
      this.kill();
      this.settle({ outcome: 'memory', detail: `peak RSS ${(m.maxRssKb / 1024).toFixed(0)} MiB > ${this.opts.memoryMb} MiB after: ${m.detail}`, ms: m.ms, maxRssKb: m.maxRssKb });
      return;
    }
    this.settle({ outcome: m.outcome as Outcome, detail: m.detail, ms: m.ms, maxRssKb: m.maxRssKb });
  }

  private settle(r: ChildResult): void {
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = undefined;
    p.resolve(r);
  }

  private kill(): void {
    const child = this.child;
    this.child = undefined;
    this.ready = undefined;
    this.restarts++;
    child?.kill('SIGKILL');
  }

  /** Runs one request (an input index or explicit bytes) in the child; never rejects. */
  async run(req: Omit<WorkerRequest, 'id'>): Promise<ChildResult> {
    if (!this.child) this.ready = this.start();
    await this.ready;
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.kill();
        this.settle({ outcome: 'hang', detail: `no result within ${this.opts.timeoutMs} ms`, ms: this.opts.timeoutMs, maxRssKb: 0 });
      }, this.opts.timeoutMs);
      this.pending = { id, resolve, timer };
      this.child!.send({ ...req, id });
    });
  }

  close(): void {
    const child = this.child;
    this.child = undefined;
    child?.disconnect();
  }
}
