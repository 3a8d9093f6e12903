// The run's log.jsonl (one JSON line per step and per evaluation) and its loss plot, loss.png. On resume the log keeps
// the lines up to the checkpoint's step; the steps after it are run, and logged, again.
import * as fs from 'fs';
import * as path from 'path';
import { writeLossPlot } from './plot';

export interface LogLine {
  step: number;
  loss?: number;
  eval_loss?: number;
  [k: string]: unknown;
}

export class TrainLog {
  readonly lines: LogLine[];
  private readonly file: string;

  /** Starts the log in `dir`: empty, or, when resuming, the earlier lines up to `upToStep`. */
  constructor(private readonly dir: string, resumeFrom: number | undefined) {
    this.file = path.join(dir, 'log.jsonl');
    this.lines = resumeFrom === undefined || !fs.existsSync(this.file) ? [] : fs.readFileSync(this.file, 'utf8')
      .split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as LogLine).filter((l) => l.step <= resumeFrom);
    fs.writeFileSync(this.file, this.lines.map((l) => JSON.stringify(l) + '\n').join(''));
  }

  append(line: LogLine): void {
    this.lines.push(line);
    fs.appendFileSync(this.file, JSON.stringify(line) + '\n');
  }

  /** The newest training loss logged (NaN before any). */
  lastLoss(): number {
    return [...this.lines].reverse().find((l) => l.loss !== undefined)?.loss ?? NaN;
  }

  /** loss.png: training loss (blue) and evaluation loss (orange) against the step. */
  plot(): void {
    writeLossPlot(path.join(this.dir, 'loss.png'), [
      { points: this.lines.filter((l) => l.loss !== undefined).map((l) => [l.step, l.loss!]), rgb: [31, 119, 180] },
      { points: this.lines.filter((l) => l.eval_loss !== undefined).map((l) => [l.step, l.eval_loss!]), rgb: [255, 127, 14] },
    ]);
  }
}
