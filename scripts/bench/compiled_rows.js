// The rows that a user's process runs as the package ships: the compiled JavaScript (bench.ts builds it with
// tsconfig.build.json into BUILD_DIR) under plain node, in a fresh process each. No TypeScript loader in the
// process: tsx alone adds ~55-90 MiB of RSS (it loads tfjs's ESM build file by file) and its start-up time.
//   node scripts/bench/compiled_rows.js BUILD_DIR MODEL_DIR [--answer] [--real-width] [--decode-context N]
//        [--decode-steps N] [--logits FILE]                                    (one JSON line on stdout)
// Always: the load (time; peak RSS beside the RSS before it). --answer: then the first answer of a CLI user, a
// prefill of the folder's prompt and its first token (the image + text prompt of a scripts/gpu/flash_torch.py folder,
// else the bench model's 512-token prompt), with the time since the process started (the cold start).
// --real-width: then a second prefill of the same prompt, its last-token logits against PyTorch's (--logits), and
// greedy decode steps after --decode-context tokens of the folder's context_ids.
'use strict';
const fs = require('fs');
const path = require('path');

/** A field of /proc/self/status in MiB (VmRSS now, VmHWM the peak so far); -1 where /proc is missing. */
function procMiB(field) {
  try {
    const m = fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) / 1024 : -1;
  } catch {
    return -1;
  }
}

/** Milliseconds since this process started, from /proc (the clock flash_torch.py and bench_torch.py read too). */
function sinceStartMs() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const uptime = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
  return (uptime - startTicks / 100) * 1000; // USER_HZ is 100 on Linux
}

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const argmax = (v) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);

async function main() {
  const [buildDir, model] = process.argv.slice(2);
  if (!buildDir || !model) throw new Error('usage: node scripts/bench/compiled_rows.js BUILD_DIR MODEL_DIR [--answer] [--real-width]');
  const lib = (...p) => require(path.resolve(buildDir, ...p));
  const { initBackend, shutdownBackend } = lib('lib', 'backend');
  const { loadModel } = lib('models', 'glm4v', 'auto');
  const backend = await initBackend({ quiet: true });
  const before = procMiB('VmRSS');
  let t0 = performance.now();
  const m = loadModel(model);
  const out = { backend, load_ms: performance.now() - t0, rss_before_mib: before, peak_rss_mib: procMiB('VmHWM'), rss_after_mib: procMiB('VmRSS'), params: m.numParameters() };
  try {
    if (process.argv.includes('--answer') || process.argv.includes('--real-width')) await answer(lib, m, model, out);
  } finally {
    m.dispose();
    shutdownBackend();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

async function answer(lib, m, model, out) {
  const tf = require('@tensorflow/tfjs');
  const { SafetensorsFile } = lib('lib', 'safetensors');
  const { decodeOne, prefill } = lib('generation', 'generate');
  const f = new SafetensorsFile(path.join(model, 'inputs.safetensors'));
  const keys = new Set(f.keys());
  const ids = Array.from(f.read(keys.has('input_ids') ? 'input_ids' : 'prefill.input_ids').data, Number);
  const px = keys.has('pixel_values') ? f.read('pixel_values') : undefined;
  const grid = px ? JSON.parse(f.metadata.image_grid_thw) : undefined;
  const context = keys.has('context_ids') ? Array.from(f.read('context_ids').data, Number) : undefined;
  f.close();
  const pixelValues = px ? tf.tensor2d(px.data, px.shape) : undefined;
  const prompt = () => prefill(m, { inputIds: [ids], ...(px ? { pixelValues, imageGridThw: grid } : {}) });
  try {
    let t0 = performance.now();
    let r = await prompt();
    out.first_token = argmax(r.logits[0]);
    out.first_prefill_ms = performance.now() - t0;
    out.first_token_since_start_ms = sinceStartMs();
    out.prefill_tokens = ids.length;
    r.state.cache.dispose();
    if (!process.argv.includes('--real-width')) return;
    t0 = performance.now();
    r = await prompt();
    out.prefill_ms = performance.now() - t0;
    r.state.cache.dispose();
    const last = r.logits[0];
    const refFile = arg('--logits');
    if (refFile && fs.existsSync(refFile)) {
      const ref = new SafetensorsFile(refFile).read('logits').data;
      let d = 0;
      for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(last[i] - ref[i]));
      Object.assign(out, { logits_max_abs_diff: d, argmax_ours: argmax(last), argmax_torch: argmax(ref) });
    }
    const n = Number(arg('--decode-context', '1024')), steps = Number(arg('--decode-steps', '8'));
    if (!context || context.length < n) throw new Error(`${model}/inputs.safetensors: context_ids: need ${n} tokens for --decode-context`);
    const c = await prefill(m, { inputIds: [context.slice(0, n)] });
    try {
      let tok = argmax(c.logits[0]);
      const times = [];
      for (let s = 0; s < steps; s++) {
        t0 = performance.now();
        tok = argmax((await decodeOne(m, [tok], c.state))[0]);
        times.push(performance.now() - t0);
      }
      Object.assign(out, { decode_context: n, decode_ms: times.slice(1) }); // the first step after a prefill is warm-up
    } finally {
      c.state.cache.dispose();
    }
  } finally {
    out.peak_rss_answer_mib = procMiB('VmHWM');
    if (pixelValues) pixelValues.dispose();
  }
}

main().catch((e) => {
  process.stderr.write(`compiled_rows: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
