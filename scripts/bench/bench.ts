// Side-by-side benchmark: this package vs PyTorch + transformers (CPU, torch.set_num_threads) on one GLM-4.1V
// config with the same bf16 checkpoint and inputs. Rows: vision encoding, prefill, a long prefill (the longest decode
// context as one prompt), decode at three contexts, an
// AdamW training step, checkpoint loading and the cold start, the backend's plain 2-D matmul, and a real-width
// section (GLM-4.6V-Flash's widths, 2+2 layers); each the median of several runs after warm-up, with model-level
// GFLOP/s from analytic matmul FLOPs (flops.ts), and the speed issue's targets marked. A full run (every row, not
// --quick) also writes its tables into docs/benchmark.md's latest-run section. See docs/benchmark.md.
// Usage: npx tsx scripts/bench/bench.ts [--quick] [--out out/bench.json] [--model DIR] [--threads 2 (PyTorch, a list)]
//        [--our-threads 1,2] [--rows matmul,vision,prefill,long,decode,train,load,real] [--contexts 128,1024,4096] [--no-torch] [--no-doc]
//        [--checkpointing all|text|none (default none)] [--moe (the glm4v_moe model of the same shapes, out/bench_model_moe)]
// PyTorch: GLM46V_PYTHON (default python3) with torch + transformers; skipped with a note when unavailable.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { parseGlm4vConfig } from '../../models/glm4v/config';
import { benchFlops } from './flops';
import { parseGlm4vMoeConfig } from '../../models/glm4v_moe/config';
import { BENCH_CONFIG, BENCH_MOE_CONFIG, BENCH_SHAPES, DEFAULT_DIR, DEFAULT_MOE_DIR, isComplete, makeBenchModel } from './make_bench_model';
import { RunOptions, runRows } from './ours';
import { SafetensorsFile } from '../../lib/safetensors';
import { buildTable, buildTargets, markdown, Res } from './report';
import { arg } from './args';

/** --checkpointing all|text|none: which blocks the training row recomputes in its backward pass. */
function checkpointingArg(): RunOptions['checkpointing'] {
  const v = arg('--checkpointing', 'none');
  if (v !== 'all' && v !== 'text' && v !== 'none') throw new Error(`--checkpointing: expected all, text or none, got ${v}`);
  return v;
}

/** The last JSON line a child printed, or why there is none. */
function childResult(r: ReturnType<typeof spawnSync>, what: string): Res | string {
  const line = String(r.stdout).split('\n').reverse().find((l) => l.startsWith('{'));
  return r.status === 0 && line ? (JSON.parse(line) as Res) : `our ${what} child failed (exit ${r.status}, signal ${r.signal})`;
}

// the thread count for wasm (GLM46V_WASM_THREADS) and for the native backend's TensorFlow (TF_NUM_INTRAOP_THREADS)
const childEnv = (threads: number) => ({ ...process.env, GLM46V_WASM_THREADS: String(threads), TF_NUM_INTRAOP_THREADS: String(threads) });
const threadsLabel = (t: number) => `${t} thread${t > 1 ? 's' : ''}`;

/** Runs this file again as a child for the timed rows (fresh process: its own wasm build, thread pool and peak RSS). */
function ourChild(opts: { rows: string[] }, threads: number): Res | string {
  process.stdout.write(`ours (${threadsLabel(threads)}): ${opts.rows.join(', ')} ...\n`);
  const r = spawnSync(process.execPath, [...process.execArgv, __filename, '--child', JSON.stringify(opts)], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20, env: childEnv(threads),
  });
  return childResult(r, 'run');
}

/** The package compiled as it ships (tsconfig.build.json) into out/bench_build, for the load row; throws with tsc's first message. */
function buildPackage(): string {
  const root = path.join(__dirname, '../..'), outDir = path.join(root, 'out', 'bench_build');
  const r = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json'), '--outDir', outDir],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`building the package for the load row failed: ${(r.stdout + r.stderr).trim().split('\n')[0]}`);
  return outDir;
}

/**
 * A fresh plain-node process running the compiled package (compiled_rows.js): the load row and the cold start
 * (`--answer`), or the real-width rows (`--real-width ...`). `backend` forces one (the real-width wasm row).
 */
function ourCompiledChild(buildDir: string, model: string, threads: number, args: string[], backend?: string): Res | string {
  process.stdout.write(`ours (${threadsLabel(threads)}${backend ? `, ${backend}` : ''}): ${args.includes('--real-width') ? 'real-width rows' : 'load and first answer'} (compiled package, plain node) ...\n`);
  const r = spawnSync(process.execPath, [path.join(__dirname, 'compiled_rows.js'), buildDir, model, ...args], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20, env: { ...childEnv(threads), ...(backend ? { GLM46V_BACKEND: backend } : {}) },
  });
  process.stderr.write(r.stderr ?? '');
  const res = childResult(r, 'compiled-package');
  const why = String(r.stderr).trim().split('\n').pop() ?? '';
  return typeof res === 'string' && why ? `${res}: ${why}` : res;
}

/** The PyTorch side, or a string saying why it was skipped. */
function torchChild(python: string, mode: 'load' | 'run', args: string[], script = path.join(__dirname, 'bench_torch.py')): Res | string {
  const r = spawnSync(python, [script, mode, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.error) return `PyTorch skipped: cannot run ${python} (${r.error.message})`;
  const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) return `PyTorch ${mode} failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  return JSON.parse(line) as Res;
}

function torchAvailable(python: string): string | undefined {
  const r = spawnSync(python, ['-c', 'import torch, transformers, safetensors'], { encoding: 'utf8' });
  if (r.error) return `PyTorch skipped: no Python at '${python}' (set GLM46V_PYTHON)`;
  if (r.status !== 0) return `PyTorch skipped: ${python} cannot import torch/transformers/safetensors (${r.stderr.trim().split('\n').pop()})`;
  return undefined;
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) {
    const opts = JSON.parse(arg('--child', '{}'));
    const res = await runRows({ ...opts, rows: new Set(opts.rows) } as RunOptions);
    process.stdout.write(JSON.stringify(res) + '\n');
    return;
  }
  const quick = process.argv.includes('--quick');
  const moe = process.argv.includes('--moe');
  const config = moe ? BENCH_MOE_CONFIG : BENCH_CONFIG;
  const modelDir = path.resolve(arg('--model', moe ? DEFAULT_MOE_DIR : DEFAULT_DIR));
  const outFile = path.resolve(arg('--out', path.join(__dirname, '../../out/bench.json')));
  const torchThreads = arg('--threads', '2').split(',').map(Number);
  const ourThreads = arg('--our-threads', '1,2').split(',').map(Number);
  const rows = new Set(arg('--rows', 'matmul,vision,prefill,long,decode,train,load,real').split(','));
  const python = process.env.GLM46V_PYTHON ?? 'python3';
  // --contexts: the decode contexts (a subset of the inputs' 128,1024,4096; the GPU script runs 128,1024)
  const S = { ...BENCH_SHAPES, decodeContexts: arg('--contexts', BENCH_SHAPES.decodeContexts.join(',')).split(',').map(Number) };
  if (S.decodeContexts.some((c) => !Number.isInteger(c) || c < 1 || c > Math.max(...BENCH_SHAPES.decodeContexts))) {
    throw new Error(`--contexts: expected token counts from 1 to ${Math.max(...BENCH_SHAPES.decodeContexts)}, got ${arg('--contexts', '')}`);
  }
  const p = quick ? { warmup: 1, runs: 2, decodeSteps: 6, trainSteps: 1 } : { warmup: 1, runs: 5, decodeSteps: 16, trainSteps: 3 };
  const loadStart = os.loadavg();
  console.log(`glm46v benchmark${quick ? ' (--quick)' : ''}: load average ${loadStart.map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
  if (!isComplete(modelDir, config)) {
    console.log(`making the benchmark model in ${modelDir} ...`);
    makeBenchModel(modelDir, config);
  }
  const flops = benchFlops(moe ? parseGlm4vMoeConfig(config) : parseGlm4vConfig(config), S);
  const runOpts = {
    model: modelDir, ...p, contexts: S.decodeContexts, matmul: S.matmul, rows: [...rows].filter((r) => r !== 'load' && r !== 'real'),
    checkpointing: checkpointingArg(),
  };
  const notes: string[] = [];
  const take = (r: Res | string): Res => (typeof r === 'string' ? (notes.push(r), {}) : r);

  // Every measurement is its own process: a fresh peak RSS, its own wasm build and thread pool, and a wasm
  // out-of-memory abort (it poisons the module) costs only its own rows. Ours and PyTorch take turns group by
  // group, so that both sides of a row run at nearly the same time on a machine whose load drifts.
  const torchSkip = process.argv.includes('--no-torch') ? 'PyTorch skipped: --no-torch' : torchAvailable(python);
  if (torchSkip) notes.push(torchSkip);
  const ours: Record<number, Res> = Object.fromEntries(ourThreads.map((t) => [t, {}]));
  const torch: Record<number, Res> = torchSkip ? {} : Object.fromEntries(torchThreads.map((t) => [t, {}]));
  const torchArgs = (t: number, rowList: string[]) => ['--model', modelDir, '--threads', String(t), '--warmup', String(p.warmup),
    '--runs', String(p.runs), '--decode-steps', String(p.decodeSteps), '--train-steps', String(p.trainSteps),
    '--contexts', S.decodeContexts.join(','), '--matmul', S.matmul.join(','), '--rows', rowList.join(',')];
  const groups = [
    rows.has('load') ? ['load'] : [],
    runOpts.rows.filter((x) => x !== 'train'),
    rows.has('train') ? ['train'] : [],
  ].filter((g) => g.length > 0);
  const buildDir = rows.has('load') || rows.has('real') ? buildPackage() : '';
  for (const g of groups) {
    const isLoad = g[0] === 'load';
    for (const t of ourThreads) {
      const r = isLoad ? take(ourCompiledChild(buildDir, modelDir, t, ['--answer'])) : take(ourChild({ ...runOpts, rows: g }, t));
      merge(ours[t]!, r, isLoad ? undefined : g.join('+'));
    }
    for (const t of torchSkip ? [] : torchThreads) {
      console.log(`PyTorch (${t} thread${t > 1 ? 's' : ''}): ${g.join(', ')} ...`);
      const r = isLoad ? take(torchChild(python, 'load', ['--model', modelDir, '--threads', String(t)])) : take(torchChild(python, 'run', torchArgs(t, g)));
      merge(torch[t]!, r, isLoad ? undefined : g.join('+'));
    }
  }
  const real = rows.has('real') && !moe ? realWidthRows(python, torchSkip, buildDir, ourThreads, torchThreads, quick) : undefined;
  if (real) {
    notes.push(...real.notes);
    for (const t of ourThreads) Object.assign(ours[t]!, real.ours[t]);
    for (const t of Object.keys(torch).map(Number)) Object.assign(torch[t]!, real.torch[t]);
  }
  const loadEnd = os.loadavg();

  const params = [...Object.values(ours), ...Object.values(torch)].map((r) => r.params).find((x) => typeof x === 'number') as number | undefined;
  const f32MiB = ((params ?? NaN) * 4) / 2 ** 20;
  const table = buildTable(ours, torch, flops, S, rows, 'wall'), cpuTable = buildTable(ours, torch, flops, S, rows, 'cpu');
  const realParams = Object.values(ours).map((r) => r.real_params).find((x) => typeof x === 'number') as number | undefined;
  const targets = buildTargets(table, ours, f32MiB, 'wall', ((realParams ?? NaN) * 4) / 2 ** 20);
  const cpuTargets = buildTargets(cpuTable, ours, f32MiB, 'cpu').filter((t) => !t.name.includes('RSS'));
  const lo = Object.values(ours).map((r) => r.train_losses as number[] | undefined).find(Boolean);
  const lt = Object.values(torch).map((r) => r.train_losses as number[] | undefined).find(Boolean);
  if (lo || lt) notes.push(`training losses (same weights, data and AdamW step): ours ${lo?.map((x) => x.toFixed(4)).join(', ') ?? '-'}; PyTorch ${lt?.map((x) => x.toFixed(4)).join(', ') ?? '-'}`);
  const parity = maxDiff(Object.values(ours).map((r) => r.prefill_last_logits).find(Boolean), Object.values(torch).map((r) => r.prefill_last_logits).find(Boolean));
  const tv = Object.values(torch)[0];
  const ourBackend = [...new Set(Object.values(ours).map((r) => (r.backend === 'tensorflow' ? `tensorflow (TensorFlow ${r.tensorflow})` : r.backend)))].join(' / ');
  if (parity !== undefined) notes.push(`same weights and inputs: prefill last-token logits max |ours - PyTorch| = ${parity.toExponential(2)}`);
  const head = [
    `ours: tfjs ${tfVersion()} ${ourBackend} backend (lib/kernels overrides) with ${ourThreads.join(' / ')} thread(s); PyTorch ${tv?.torch ?? '-'} + transformers with torch.set_num_threads(${torchThreads.join(' / ')}), attention ${tv?.attn_implementation ?? '-'}`,
    `load average ${loadStart.map((x) => x.toFixed(2)).join(' ')} at start, ${loadEnd.map((x) => x.toFixed(2)).join(' ')} at end (${os.cpus().length} cores, shared)`,
    `each row: warm-up ${p.warmup}, then the median of ${p.runs} runs (decode: of ${p.decodeSteps - 1} steps after the first; train: of ${p.trainSteps} steps)`,
  ];
  const tt = torchSkip ? [] : torchThreads;
  const md = ['### Wall-clock', '', markdown(table, targets, ourThreads, tt, []), '',
    '### Process CPU time (all threads; at 1 thread the figure least disturbed by other jobs)', '',
    markdown(cpuTable, cpuTargets, ourThreads, tt, []), '', ...[...head, ...notes].map((n) => `- ${n}`)].join('\n');
  console.log('\n' + md);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  const strip = (r: Res) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'prefill_last_logits'));
  fs.writeFileSync(outFile, JSON.stringify({
    date: new Date().toISOString(), quick, loadavg_start: loadStart, loadavg_end: loadEnd, cores: os.cpus().length,
    model: modelDir, config: { text: config.text_config, vision: config.vision_config }, shapes: S, flops,
    table, targets, cpu_table: cpuTable, cpu_targets: cpuTargets, notes: [...head, ...notes], markdown: md,
    raw: { ours: Object.fromEntries(Object.entries(ours).map(([t, r]) => [t, strip(r)])), torch: Object.fromEntries(Object.entries(torch).map(([t, r]) => [t, strip(r)])) },
  }, null, 2) + '\n');
  console.log(`\nwritten ${outFile}`);
  const all = ['matmul', 'vision', 'prefill', 'decode', 'train', 'load', 'real'].every((r) => rows.has(r));
  if (!quick && !moe && all && !process.argv.includes('--no-doc')) {
    writeDocSection(DOC, `\`npx tsx scripts/bench/bench.ts ${process.argv.slice(2).join(' ')}\` on ${os.cpus().length} cores, ${new Date().toISOString().slice(0, 10)}, ours on ${ourBackend}:\n\n${md}`);
    console.log(`written the latest-run section of ${DOC}`);
  }
}

const DOC = path.join(__dirname, '../../docs/benchmark.md');
const BEGIN = '<!-- bench.ts: latest run (begin) -->', END = '<!-- bench.ts: latest run (end) -->';

/** Replaces what lies between the markers of `file` with `text` (a temporary file, then a rename). */
function writeDocSection(file: string, text: string): void {
  const doc = fs.readFileSync(file, 'utf8');
  const [a, b] = [doc.indexOf(BEGIN), doc.indexOf(END)];
  if (a < 0 || b < a) throw new Error(`${file}: no '${BEGIN}' ... '${END}' section to write the table into`);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${doc.slice(0, a + BEGIN.length)}\n${text.replace(/###/g, '####')}\n${doc.slice(b)}`);
  fs.renameSync(tmp, file);
}

const REAL_DIR = path.resolve(__dirname, '../../out/real_width');
const FLASH_SCRIPT = path.join(__dirname, '../gpu/flash_torch.py');

/**
 * The real-width section: GLM-4.6V-Flash's widths cut to 2 text layers and 2 vision blocks (1.92e9 parameters; made
 * once by transformers with random weights, saved as sharded bf16: scripts/gpu/flash_torch.py make), one 672x672 image
 * plus 64 text tokens, decode at context 1024; each side in float32 in fresh processes, PyTorch first (its last-token
 * logits are the reference for ours). Then the same folder on wasm, which must end in its one-line refusal.
 */
function realWidthRows(python: string, torchSkip: string | undefined, buildDir: string, ourThreads: number[], torchThreads: number[], quick: boolean):
  { ours: Record<number, Res>; torch: Record<number, Res>; notes: string[] } {
  const out = { ours: {} as Record<number, Res>, torch: {} as Record<number, Res>, notes: [] as string[] };
  if (torchSkip) {
    out.notes.push(`real-width rows skipped: transformers makes their model (${torchSkip})`);
    return out;
  }
  const inputs = path.join(REAL_DIR, 'inputs.safetensors');
  const hasContext = () => {
    const f = new SafetensorsFile(inputs);
    try {
      return f.keys().includes('context_ids');
    } finally {
      f.close();
    }
  };
  if (!fs.existsSync(inputs) || !hasContext()) {
    console.log(`making the real-width model in ${REAL_DIR} (transformers, random bf16 weights) ...`);
    fs.rmSync(REAL_DIR, { recursive: true, force: true });
    const r = spawnSync(python, [FLASH_SCRIPT, 'make', '--out', REAL_DIR, '--text-layers', '2', '--vision-blocks', '2', '--image', '672',
      '--text-tokens', '64', '--context', '1024', '--device', 'cpu', '--shard-size', '2GB'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status !== 0) {
      out.notes.push(`real-width rows skipped: making the model failed (exit ${r.status}): ${String(r.stderr).trim().split('\n').pop()}`);
      return out;
    }
  }
  const steps = String(quick ? 4 : 8), logits = path.join(REAL_DIR, 'torch_logits_f32.safetensors');
  fs.rmSync(logits, { force: true });
  for (const t of torchThreads) {
    console.log(`PyTorch (${threadsLabel(t)}): real-width rows ...`);
    const r = torchChild(python, 'run', ['--model', REAL_DIR, '--device', 'cpu', '--dtype', 'float32', '--threads', String(t),
      '--decode-context', '1024', '--decode-steps', steps, '--logits', logits], FLASH_SCRIPT);
    if (typeof r === 'string') out.notes.push(`real width, PyTorch ${threadsLabel(t)}: ${r}`);
    else out.torch[t] = { real_load_ms: (r.load_s as number) * 1000, real_peak_rss_mib: r.peak_rss_load_mib, real_cold_ms: (r.first_token_since_start_s as number) * 1000,
      real_prefill_ms: [(r.prefill_s as number) * 1000], real_decode1024_ms: [r.decode_ms_median], real_first_token: r.first_token };
  }
  for (const t of ourThreads) {
    const r = ourCompiledChild(buildDir, REAL_DIR, t, ['--real-width', '--decode-context', '1024', '--decode-steps', steps, '--logits', logits]);
    if (typeof r === 'string') {
      out.notes.push(`real width, ours ${threadsLabel(t)}: ${r}`);
      continue;
    }
    out.ours[t] = { real_load_ms: r.load_ms, real_peak_rss_mib: r.peak_rss_mib, real_cold_ms: r.first_token_since_start_ms, real_prefill_ms: [r.prefill_ms],
      real_decode1024_ms: r.decode_ms, real_params: r.params };
    if (r.logits_max_abs_diff !== undefined) {
      out.notes.push(`real width, same weights and inputs (${threadsLabel(t)}): last-token logits max |ours - PyTorch| = ${(r.logits_max_abs_diff as number).toExponential(2)}, argmax ${r.argmax_ours} / ${r.argmax_torch}`);
    }
  }
  const w = ourCompiledChild(buildDir, REAL_DIR, 1, ['--answer'], 'wasm');
  out.notes.push(typeof w === 'string' ? `real width on wasm: ${w}` : `real width on wasm: it loaded (${w.peak_rss_mib} MiB peak), which the 4 GiB heap should not allow`);
  return out;
}

/** Collects a child's results; the peak RSS of a timed group is kept under the group's name (the load's is its own). */
function merge(into: Res, r: Res, group?: string): void {
  for (const [k, v] of Object.entries(r)) into[group && k === 'peak_rss_mib' ? `peak_rss_mib_${group}` : k] = v;
}

function tfVersion(): string {
  return (require('@tensorflow/tfjs/package.json') as { version: string }).version;
}

function maxDiff(a: unknown, b: unknown): number | undefined {
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return undefined;
  return a.reduce((m: number, x: number, i: number) => Math.max(m, Math.abs(x - (b[i] as number))), 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
