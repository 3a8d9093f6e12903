// The benchmark's table and targets from the raw child results (bench.ts): medians, model-level GFLOP/s from the
// analytic FLOPs, ours (per wasm thread count) beside PyTorch, and the targets of the issue per thread count.
import type { RowFlops } from './flops';

export type Res = Record<string, unknown>;

export const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

const med = (r: Res | undefined, k: string) => (r && Array.isArray(r[k]) ? median(r[k] as number[]) : undefined);
const num = (r: Res | undefined, k: string) => (r && typeof r[k] === 'number' ? (r[k] as number) : undefined);
const loadIncrement = (r: Res | undefined) => {
  const peak = num(r, 'peak_rss_mib'), before = num(r, 'rss_before_mib');
  return peak === undefined || before === undefined ? undefined : peak - before;
};

export interface Row {
  row: string;
  unit: 'ms' | 'MiB';
  /** per thread count */
  ours: Record<number, number | undefined>;
  torch: Record<number, number | undefined>;
  flops?: number;
  note?: string;
}

export interface Target { name: string; limit: number; op: '<=' | '>='; values: Record<number, number | undefined> }

export interface Shapes { visionGrid: readonly number[]; prefillTokens: number; decodeContexts: number[]; trainBatch: number; trainTokens: number; matmul: number[] }

/**
 * One table per clock: 'wall' (what a user waits) or 'cpu' (process CPU time, all threads: at 1 thread the
 * figure least disturbed by other jobs on a shared machine). Load rows are wall-clock and in the wall table only.
 */
export function buildTable(ours: Record<number, Res>, torch: Record<number, Res>, flops: RowFlops, S: Shapes, rows: Set<string>, clock: 'wall' | 'cpu'): Row[] {
  const suffix = clock === 'wall' ? '_ms' : '_cpu_ms';
  const threads = Object.keys(ours).map(Number), torchThreads = Object.keys(torch).map(Number);
  const per = (f: (r: Res) => number | undefined) => Object.fromEntries(threads.map((t) => [t, f(ours[t]!)]));
  const perTorch = (f: (r: Res) => number | undefined) => Object.fromEntries(torchThreads.map((t) => [t, f(torch[t]!)]));
  const timeRow = (row: string, name: string, f: number, note?: string): Row =>
    ({ row, unit: 'ms', ours: per((r) => med(r, name + suffix)), torch: perTorch((r) => med(r, name + suffix)), flops: f, ...(note ? { note } : {}) });
  const table: Row[] = [];
  const [M, K, N] = S.matmul;
  if (rows.has('matmul')) {
    table.push(timeRow(`plain 2-D matmul [${M},${K}]x[${K},${N}]`, 'matmul', flops.matmul));
    table.push(timeRow(`2-D matmul, Linear form [${M},${K}]x[${N},${K}]ᵀ`, 'matmul_linear', flops.matmul));
  }
  if (rows.has('vision')) table.push(timeRow(`vision encode 448x448 (grid ${JSON.stringify(S.visionGrid)})`, 'vision', flops.vision));
  if (rows.has('prefill')) table.push(timeRow(`prefill ${S.prefillTokens} text tokens`, 'prefill', flops.prefill));
  if (rows.has('long')) table.push(timeRow(`long prefill: ${Math.max(...S.decodeContexts)} text tokens`, 'prefill_long', flops.prefillLong));
  if (rows.has('decode')) {
    for (const c of S.decodeContexts) table.push(timeRow(`decode at context ${c} (ms/token)`, `decode${c}`, flops.decode[c]!));
  }
  if (rows.has('train')) {
    const ckpt = threads.map((t) => ours[t]!.train_checkpointing).find((c) => c && c !== 'none');
    const what = ckpt === 'text' ? 'of the decoder layers' : 'of every vision block and decoder layer';
    table.push(timeRow(`train step (AdamW) ${S.trainBatch}x${S.trainTokens} tokens + 1 image/row`, 'train', flops.train,
      ckpt ? `ours with activation checkpointing ${what} (its extra forward is not counted in GFLOP/s)` : undefined));
  }
  const numRow = (row: string, unit: Row['unit'], key: string): Row => ({ row, unit, ours: per((r) => num(r, key)), torch: perTorch((r) => num(r, key)) });
  if (rows.has('load') && clock === 'wall') {
    table.push(numRow('load sharded bf16 checkpoint', 'ms', 'load_ms'));
    table.push({ row: 'load: peak RSS above the RSS before loading', unit: 'MiB', ours: per(loadIncrement), torch: perTorch(loadIncrement) });
    table.push(numRow('load: process peak RSS (VmHWM)', 'MiB', 'peak_rss_mib'));
    table.push(numRow(`cold start: a fresh process to the first token of the ${S.prefillTokens}-token prompt`, 'ms', 'first_token_since_start_ms'));
  }
  if (rows.has('real') && clock === 'wall' && threads.some((t) => ours[t]!.real_load_ms !== undefined)) {
    table.push(numRow(`${REAL} load sharded bf16`, 'ms', 'real_load_ms'));
    table.push(numRow(`${REAL} load: process peak RSS (VmHWM)`, 'MiB', 'real_peak_rss_mib'));
    table.push(numRow(`${REAL} cold start: a fresh process to the first token of one 672x672 image + 64 tokens`, 'ms', 'real_cold_ms'));
    table.push({ ...timeRow(`${REAL} prefill of one 672x672 image + 64 tokens`, 'real_prefill', NaN), flops: undefined });
    table.push({ ...timeRow(`${REAL} decode at context 1024 (ms/token)`, 'real_decode1024', NaN), flops: undefined });
  }
  return table;
}

/** The prefix of the real-width section's rows (bench.ts realWidthRows). */
export const REAL = 'real width (GLM-4.6V-Flash widths, 2+2 layers):';

/**
 * The speed issue's targets per thread count of ours, each against PyTorch at the same thread count. The GFLOP/s
 * ratios use the GEMM rate measured right before and after the row in the same process (gemm_<row>: the faster of
 * the plain and Linear forms), so that the reference saw the same machine load as the row; without those samples,
 * the matmul rows of the table.
 */
export function buildTargets(table: Row[], ours: Record<number, Res>, f32MiB: number, clock: 'wall' | 'cpu', realF32MiB = NaN): Target[] {
  const threads = Object.keys(ours).map(Number);
  const suffix = clock === 'wall' ? '_ms' : '_cpu_ms';
  const find = (prefix: string) => table.find((r) => r.row.startsWith(prefix));
  const gf = (r: Row | undefined, t: number) => (r?.flops && r.ours[t] ? r.flops / r.ours[t]! / 1e6 : undefined);
  const ratio = (a?: number, b?: number) => (a === undefined || b === undefined || !Number.isFinite(a / b) ? undefined : a / b);
  const per = (f: (t: number) => number | undefined) => Object.fromEntries(threads.map((t) => [t, f(t)]));
  const mmFlops = find('plain 2-D matmul')?.flops;
  const gemm = (t: number, row: string) => {
    const bracket = med(ours[t], `gemm_${row}${suffix}`);
    if (bracket !== undefined && mmFlops) return mmFlops / bracket / 1e6;
    const g = [gf(find('plain 2-D matmul'), t), gf(find('2-D matmul, Linear form'), t)].filter((x): x is number => x !== undefined);
    return g.length ? Math.max(...g) : undefined;
  };
  const vsTorch = (prefix: string, name: string): Target | undefined => {
    const r = find(prefix);
    return r && { name: `${name}: ours / PyTorch (same threads)`, limit: 1.0, op: '<=', values: per((t) => ratio(r.ours[t], r.torch[t])) };
  };
  const targets: Array<Target | undefined> = [
    vsTorch('vision encode', 'vision encode'),
    vsTorch('prefill', 'prefill'),
    vsTorch('decode at context 128 ', 'decode at 128'),
    vsTorch('decode at context 1024 ', 'decode at 1024'),
    vsTorch('train step', 'train step'),
    vsTorch('load sharded', 'load'),
    vsTorch('cold start', 'cold start'),
    vsTorch(`${REAL} load sharded`, 'real width: load'),
    vsTorch(`${REAL} cold start`, 'real width: cold start'),
    vsTorch(`${REAL} prefill`, 'real width: prefill'),
    vsTorch(`${REAL} decode`, 'real width: decode at 1024'),
    find('decode at context 4096') && { name: 'decode ms/token at 4096 / at 128', limit: 1.3, op: '<=', values: per((t) => ratio(find('decode at context 4096')?.ours[t], find('decode at context 128 ')?.ours[t])) },
    ...(['prefill', 'vision', 'train'] as const).map((row) => {
      const r = find(row === 'train' ? 'train step' : row === 'vision' ? 'vision encode' : 'prefill');
      return r && { name: `${row} GFLOP/s / 2-D matmul GFLOP/s (faster form, same load)`, limit: 0.7, op: '>=' as const, values: per((t) => ratio(gf(r, t), gemm(t, row))) };
    }),
    find('load: process peak') && { name: `load: process peak RSS / float32 weights (${f32MiB.toFixed(0)} MiB)`, limit: 1.3, op: '<=', values: per((t) => ratio(find('load: process peak')?.ours[t], f32MiB)) },
    find(`${REAL} load: process peak`) && { name: `real width: load process peak RSS / float32 weights (${realF32MiB.toFixed(0)} MiB)`, limit: 1.3, op: '<=', values: per((t) => ratio(find(`${REAL} load: process peak`)?.ours[t], realF32MiB)) },
  ];
  return targets.filter((x): x is Target => x !== undefined);
}

const fmt = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** The smallest value and the thread count that gave it. */
function best(vals: Record<number, number | undefined>): [number | undefined, number | undefined] {
  let b: number | undefined, bt: number | undefined;
  for (const [t, v] of Object.entries(vals)) if (v !== undefined && (b === undefined || v < b)) [b, bt] = [v, Number(t)];
  return [b, bt];
}

export function markdown(table: Row[], targets: Target[], threads: number[], torchThreads: number[], notes: string[]): string {
  const th = threads.map((t) => `ours ${t}T`), tt = torchThreads.map((t) => `PyTorch ${t}T`);
  const lines = [
    `| row | ${th.join(' | ')} | ${tt.join(' | ')} | best ours / best PyTorch | ours GFLOP/s (best) | PyTorch GFLOP/s (best) | note |`,
    `|---|${threads.map(() => '---:|').join('')}${torchThreads.map(() => '---:|').join('')}---:|---:|---:|---|`,
  ];
  for (const r of table) {
    const [bo, bot] = best(r.ours), [bp, bpt] = best(r.torch);
    const u = ` ${r.unit}`;
    const cell = (v?: number) => (v === undefined ? '-' : fmt(v) + u);
    const ratio = bo !== undefined && bp ? `${(bo / bp).toFixed(2)}x${r.unit === 'ms' ? ` (${bot}T / ${bpt}T)` : ''}` : '-';
    const gf = (ms?: number) => (r.flops && ms ? fmt(r.flops / ms / 1e6) : '-');
    let note = r.note ?? '';
    if (r.row.startsWith('decode') && bo && bp) note = `${(1000 / bo).toFixed(1)} vs ${(1000 / bp).toFixed(1)} tokens/s`;
    lines.push(`| ${r.row} | ${threads.map((t) => cell(r.ours[t])).join(' | ')} | ${torchThreads.map((t) => cell(r.torch[t])).join(' | ')} | ${ratio} | ${gf(bo)} | ${gf(bp)} | ${note} |`);
  }
  lines.push('', `| target | limit | ${th.join(' | ')} |`, `|---|---|${threads.map(() => '---|').join('')}`);
  for (const t of targets) {
    const cells = threads.map((n) => {
      const v = t.values[n];
      return v === undefined ? 'not measured' : `${v.toFixed(2)} ${(t.op === '<=' ? v <= t.limit : v >= t.limit) ? 'met' : 'NOT met'}`;
    });
    lines.push(`| ${t.name} | ${t.op} ${t.limit} | ${cells.join(' | ')} |`);
  }
  lines.push('', ...notes.map((n) => `- ${n}`));
  return lines.join('\n');
}
