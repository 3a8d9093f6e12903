// GPU check for users: which backend and device tfjs runs on, a matMul checked against the cpu backend, GFLOP/s, and a
// summary table at the end. On the CUDA backend it also asks nvidia-smi whether this process holds GPU memory, so the
// check shows that ops ran on the GPU rather than that the library loaded (scripts/gpu/check_cuda.sh runs it so).
// Usage: npx tsx scripts/gpu/check.ts [--sizes 512,1024] [--suite] [--bench]
//   GLM46V_BACKEND picks the backend (default here: webgpu, falling back like initBackend does).
//   --suite then runs, on that backend in a child process, the specs of scripts/gpu/gpu_specs.txt: the reference
//           suite (every model reference file, gradients and generation included), saving, and training (AdamW parity
//           with torch, LoRA, resume), plus the webgpu op checks on webgpu.
//   --bench then runs the benchmark (scripts/bench/bench.ts --quick) on that backend, writing out/bench_<backend>.json.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, initBackend, setBackendPreference, shutdownBackend, type BackendName } from '../../lib/backend';
import { nativeUsesGpu } from '../../lib/native/load';
import { webGpuAdapter } from '../../lib/webgpu';

const ROOT = path.resolve(__dirname, '..', '..');

interface Args {
  sizes?: number[];
  suite: boolean;
  bench: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { suite: false, bench: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--suite') args.suite = true;
    else if (a === '--bench') args.bench = true;
    else if (a === '--sizes') {
      const v = argv[++i] ?? '';
      const sizes = v.split(',').map(Number);
      if (sizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`--sizes ${v}: expected e.g. 512,1024`);
      args.sizes = sizes;
    } else throw new Error(`unknown argument ${a} (expected --sizes N,M, --suite or --bench)`);
  }
  return args;
}

/** Deterministic values in [-1, 1) so the cpu and device runs see identical inputs. */
function randomArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

async function onBackend<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const was = tf.getBackend();
  await tf.setBackend(name);
  try {
    return await fn();
  } finally {
    await tf.setBackend(was);
  }
}

async function matMulValues(a: Float32Array, b: Float32Array, [m, k, n]: number[]): Promise<Float32Array> {
  const c = tf.tidy(() => tf.matMul(tf.tensor2d(a, [m!, k!]), tf.tensor2d(b, [k!, n!])));
  const v = (await c.data()) as Float32Array;
  c.dispose();
  return v;
}

/** Max |device - cpu| of an [m, k] x [k, n] matMul. */
async function checkMatMul(dims: number[]): Promise<number> {
  const [m, k, n] = dims as [number, number, number];
  const a = randomArray(m * k, 1), b = randomArray(k * n, 2);
  const got = await matMulValues(a, b, dims);
  const want = await onBackend('cpu', () => matMulValues(a, b, dims));
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
  return maxDiff;
}

/** GFLOP/s of an n x n x n matMul, timed from dispatch to data on the host, after one warm-up. */
async function gflops(n: number, minMs: number): Promise<number> {
  const a = tf.tensor2d(randomArray(n * n, 3), [n, n]), b = tf.tensor2d(randomArray(n * n, 4), [n, n]);
  const once = async () => {
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
  };
  await once();
  let runs = 0;
  const t0 = performance.now();
  while (runs === 0 || performance.now() - t0 < minMs) {
    await once();
    runs++;
  }
  const ms = (performance.now() - t0) / runs;
  tf.dispose([a, b]);
  return (2 * n ** 3) / (ms * 1e6);
}

/** The specs of gpu_specs.txt, and the webgpu op checks on webgpu (they compare webgpu with cpu). */
function gpuSpecs(backend: string): string[] {
  const listed = fs.readFileSync(path.join(__dirname, 'gpu_specs.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  return backend === 'webgpu' ? [...listed, 'spec/lib/webgpu.spec.ts'] : listed;
}

/** Runs the specs in a child, its output passed through; returns the exit status and mocha's closing counts. */
function runSuite(backend: BackendName): { status: number; counts: string } {
  const specs = gpuSpecs(backend);
  process.stdout.write(`\nspecs on ${backend}: ${specs.join(' ')}\n`);
  const r = spawnSync('npx', ['mocha', ...specs], { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 << 20, env: { ...process.env, GLM46V_BACKEND: backend } });
  process.stdout.write(r.stdout + r.stderr);
  const counts = ['passing', 'failing', 'pending'].map((w) => new RegExp(`(\\d+) ${w}`).exec(r.stdout)?.[0]).filter(Boolean).join(', ');
  return { status: r.status ?? 1, counts: counts || 'no mocha summary' };
}

/** The GPU memory nvidia-smi lists for this process, or why it cannot say. */
function gpuMemoryOfThisProcess(): string {
  const r = spawnSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader'], { encoding: 'utf8' });
  if (r.status !== 0) return `nvidia-smi unavailable (${r.error?.message ?? r.stderr.trim().split('\n')[0]})`;
  const mine = r.stdout.split('\n').find((l) => l.split(',')[0]?.trim() === String(process.pid));
  return mine ? `this process holds ${mine.split(',')[1]!.trim()} on the GPU (nvidia-smi)` : 'nvidia-smi lists no GPU memory for this process';
}

function runBench(backend: BackendName): number {
  const script = path.join(ROOT, 'scripts', 'bench', 'bench.ts');
  if (!fs.existsSync(script)) {
    process.stdout.write(`\nbenchmark not run: ${path.relative(ROOT, script)} is missing\n`);
    return 1;
  }
  const out = path.join(ROOT, 'out', `bench_${backend}.json`);
  process.stdout.write(`\nbenchmark (--quick) on ${backend}, results in ${path.relative(ROOT, out)}:\n`);
  const r = spawnSync('npx', ['tsx', script, '--quick', '--out', out], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, GLM46V_BACKEND: backend } });
  return r.status ?? 1;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (!process.env.GLM46V_BACKEND) setBackendPreference('webgpu');
  const backend = await initBackend({ quiet: true });
  const adapter = webGpuAdapter();
  const device = backend === 'webgpu' && adapter ? `${adapter.name} (${adapter.description})`
    : backend === 'tensorflow' && nativeUsesGpu() ? 'CUDA GPU (tfjs-node-gpu)' : 'host CPU';
  process.stdout.write(`backend: ${describeBackend()}\ndevice: ${device}\n`);
  const summary: [string, string][] = [['backend', describeBackend()], ['device', device]];
  const slow = backend === 'cpu' || adapter?.software === true;
  const onGpu = (backend === 'webgpu' && !slow) || (backend === 'tensorflow' && nativeUsesGpu());
  const sizes = args.sizes ?? (onGpu ? [1024, 2048, 4096] : [256, 512]);
  let failed = 0;
  // Correctness on a tile-aligned and a ragged shape; the cpu backend (~1 GFLOP/s) bounds the sizes.
  for (const dims of [[512, 512, 512], [333, 517, 259]]) {
    const maxDiff = await checkMatMul(dims);
    const tol = 1e-4; // float32, |values| < 1, k ~ 500: observed diffs are ~1e-5
    if (!(maxDiff <= tol)) failed++;
    const verdict = maxDiff <= tol ? 'ok' : 'MISMATCH';
    process.stdout.write(`matMul ${dims.join('x')}: max |${backend} - cpu| = ${maxDiff.toExponential(2)} ${verdict}\n`);
    summary.push([`matMul ${dims.join('x')} vs cpu`, `${maxDiff.toExponential(2)} ${verdict}`]);
  }
  for (const n of sizes) {
    const rate = await gflops(n, slow ? 1000 : 300);
    process.stdout.write(`matMul ${n}x${n}x${n}: ${rate.toFixed(1)} GFLOP/s\n`);
    summary.push([`matMul ${n}^3`, `${rate.toFixed(1)} GFLOP/s`]);
  }
  if (backend === 'tensorflow' && nativeUsesGpu()) summary.push(['GPU placement', gpuMemoryOfThisProcess()]);
  // the children start their own backend: release the device first
  shutdownBackend();
  if (args.suite) {
    const suite = runSuite(backend);
    failed += suite.status === 0 ? 0 : 1;
    summary.push(['reference suite (gpu_specs.txt)', `${suite.counts}${suite.status === 0 ? '' : ' FAILED'}`]);
  }
  if (args.bench) {
    const status = runBench(backend);
    failed += status === 0 ? 0 : 1;
    summary.push(['benchmark --quick', status === 0 ? `table above, out/bench_${backend}.json` : 'FAILED']);
  }
  const width = Math.max(...summary.map(([k]) => k.length));
  process.stdout.write(`\n| ${'check'.padEnd(width)} | result |\n| ${'-'.repeat(width)} | --- |\n`);
  for (const [k, v] of summary) process.stdout.write(`| ${k.padEnd(width)} | ${v} |\n`);
  process.stdout.write(failed === 0 ? 'check passed\n' : `check FAILED (${failed})\n`);
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`check failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    shutdownBackend();
    process.exitCode = 1;
  },
);
