// The seeded mutation fuzzer over the readers of untrusted bytes: PNG and JPEG decoding, safetensors files and
// sharded indexes, config.json and preprocessor_config.json. Every input must end in a valid result or a named
// one-line error; crashes, hangs (past --timeout-ms) and peaks past --memory-mb are counted and listed.
//
//   npx tsx scripts/fuzz/fuzz.ts --inputs 100000 --seed 1            the run docs/reliability.md reports
//   npx tsx scripts/fuzz/fuzz.ts --seed 1 --show 1234 --out x.png     write input 1234 and print its outcome
//   npx tsx scripts/fuzz/fuzz.ts --seed 1 --minimize 1234 --out x.png shrink a failing input, keeping its failure
import * as fs from 'fs';
import { parseArgs } from 'util';
import { FuzzChild, PoolOptions } from './pool';
import { Format, FORMATS, makeInput, Outcome } from './targets';

export interface FuzzOptions extends PoolOptions {
  inputs: number;
  seed: number;
  jobs: number;
  formats: Format[];
  onProgress?: (done: number) => void;
}

export interface Finding {
  index: number;
  format: Format;
  outcome: Outcome;
  detail: string;
}

export interface FuzzReport {
  options: Omit<FuzzOptions, 'onProgress'>;
  counts: Record<string, Record<Outcome, number>>;
  findings: Finding[];
  /** the slowest input that ended (ms) and its index */
  slowest: { ms: number; index: number };
  seconds: number;
  /** the highest peak RSS of any child, MiB */
  peakRssMb: number;
}

export const DEFAULTS: Omit<FuzzOptions, 'inputs' | 'seed'> = { jobs: 1, timeoutMs: 2000, memoryMb: 1024, formats: [...FORMATS] };

const empty = (): Record<Outcome, number> => ({ valid: 0, error: 0, crash: 0, hang: 0, memory: 0 });

/** Runs inputs 0..inputs-1 of `seed` over `jobs` child processes. */
export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const t0 = performance.now();
  const counts: Record<string, Record<Outcome, number>> = Object.fromEntries(o.formats.map((f) => [f, empty()]));
  const findings: Finding[] = [];
  const slowest = { ms: 0, index: -1 };
  const children = Array.from({ length: o.jobs }, () => new FuzzChild(o));
  let next = 0, done = 0;
  await Promise.all(children.map(async (child) => {
    for (let i = next++; i < o.inputs; i = next++) {
      const r = await child.run({ seed: o.seed, index: i, formats: o.formats });
      const format = o.formats[i % o.formats.length]!;
      counts[format]![r.outcome]++;
      if (r.outcome === 'crash' || r.outcome === 'hang' || r.outcome === 'memory') findings.push({ index: i, format, outcome: r.outcome, detail: r.detail });
      if (r.outcome !== 'hang' && r.ms > slowest.ms) Object.assign(slowest, { ms: r.ms, index: i });
      if (++done % 1000 === 0) o.onProgress?.(done);
    }
    child.close();
  }));
  const { onProgress: _, ...options } = o;
  findings.sort((a, b) => a.index - b.index);
  return {
    options, counts, findings, slowest,
    seconds: (performance.now() - t0) / 1000,
    peakRssMb: Math.max(...children.map((c) => c.peakRssKb)) / 1024,
  };
}

export function formatReport(r: FuzzReport): string {
  const rows = [['format', 'inputs', 'valid', 'named error', 'crash', 'hang', 'memory']];
  const total = empty();
  for (const [f, c] of Object.entries(r.counts)) {
    const n = Object.values(c).reduce((a, b) => a + b, 0);
    rows.push([f, n, c.valid, c.error, c.crash, c.hang, c.memory].map(String));
    for (const k of Object.keys(total) as Outcome[]) total[k] += c[k];
  }
  rows.push(['total', r.options.inputs, total.valid, total.error, total.crash, total.hang, total.memory].map(String));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const table = rows.map((row) => row.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  '));
  const lines = [
    `seed ${r.options.seed}, ${r.options.inputs} inputs, ${r.options.jobs} job(s), limit ${r.options.timeoutMs} ms and ${r.options.memoryMb} MiB per input`,
    ...table,
    `time ${r.seconds.toFixed(1)} s, slowest input ${r.slowest.ms.toFixed(0)} ms (#${r.slowest.index}), peak RSS ${r.peakRssMb.toFixed(0)} MiB`,
  ];
  for (const f of r.findings.slice(0, 20)) lines.push(`#${f.index} ${f.format} ${f.outcome}: ${f.detail}`);
  if (r.findings.length > 20) lines.push(`... and ${r.findings.length - 20} more`);
  return lines.join('\n');
}

/**
 * Shrinks a failing input (ddmin: ranges of halving length removed) while it keeps failing the same way, the same
 * outcome and, for a crash, the same error name and first 30 characters of the message; at most `budget` tries.
 */
export async function minimize(child: FuzzChild, format: Format, seedFile: string, bytes: Uint8Array, budget = 3000): Promise<Uint8Array> {
  const first = await child.run({ format, seedFile, bytes });
  if (first.outcome === 'valid' || first.outcome === 'error') throw new Error(`the input does not fail (${first.outcome}: ${first.detail})`);
  const same = async (b: Uint8Array) => {
    if (budget-- <= 0) return false;
    const r = await child.run({ format, seedFile, bytes: b });
    return r.outcome === first.outcome && (r.outcome !== 'crash' || r.detail.slice(0, 30) === first.detail.slice(0, 30));
  };
  let cur = bytes;
  for (let chunk = Math.max(1, cur.length >> 1); chunk >= 1; chunk >>= 1) {
    for (let at = 0; at < cur.length;) {
      const cand = new Uint8Array([...cur.subarray(0, at), ...cur.subarray(at + chunk)]);
      if (cand.length && (await same(cand))) cur = cand;
      else at += chunk;
    }
  }
  return cur;
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      inputs: { type: 'string', default: '10000' }, seed: { type: 'string', default: '1' },
      jobs: { type: 'string', default: String(DEFAULTS.jobs) }, 'timeout-ms': { type: 'string', default: String(DEFAULTS.timeoutMs) },
      'memory-mb': { type: 'string', default: String(DEFAULTS.memoryMb) }, formats: { type: 'string', default: FORMATS.join(',') },
      show: { type: 'string' }, minimize: { type: 'string' }, out: { type: 'string' }, json: { type: 'string' },
    },
  });
  const int = (flag: string, s: string, min: number) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${flag}: expected an integer >= ${min}, got '${s}'`);
    return n;
  };
  const formats = v.formats!.split(',') as Format[];
  for (const f of formats) if (!FORMATS.includes(f)) throw new Error(`--formats: '${f}' is not one of ${FORMATS.join(', ')}`);
  const o: FuzzOptions = {
    inputs: int('inputs', v.inputs!, 1), seed: int('seed', v.seed!, 0), jobs: int('jobs', v.jobs!, 1),
    timeoutMs: int('timeout-ms', v['timeout-ms']!, 1), memoryMb: int('memory-mb', v['memory-mb']!, 64), formats,
  };
  const one = v.show ?? v.minimize;
  if (one !== undefined) {
    const input = makeInput(o.seed, int(v.show ? 'show' : 'minimize', one, 0), formats);
    const child = new FuzzChild(o);
    const bytes = v.minimize ? await minimize(child, input.format, input.seedFile, input.bytes) : input.bytes;
    const r = await child.run({ format: input.format, seedFile: input.seedFile, bytes });
    child.close();
    if (v.out) fs.writeFileSync(v.out, bytes);
    process.stdout.write(`${input.format} from ${input.seedFile}, ${bytes.length} bytes${v.out ? ` -> ${v.out}` : ''}\n${r.outcome}: ${r.detail} (${r.ms.toFixed(0)} ms)\n`);
    return;
  }
  const report = await runFuzz({ ...o, onProgress: (n) => process.stderr.write(`\r${n}/${o.inputs}`) });
  process.stderr.write('\n');
  process.stdout.write(formatReport(report) + '\n');
  if (v.json) fs.writeFileSync(v.json, JSON.stringify(report, null, 1));
  process.exitCode = report.findings.length ? 1 : 0;
}

if (require.main === module) {
  main().catch((e: Error) => {
    process.stderr.write(`fuzz: ${e.message}\n`);
    process.exitCode = 2;
  });
}
