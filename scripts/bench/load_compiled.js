// The load row, run as a user's process runs the package: the compiled JavaScript (bench.ts builds it with
// tsconfig.build.json into BUILD_DIR) under plain node. No TypeScript loader in the process: tsx alone adds
// ~55-90 MiB of RSS (it loads tfjs's ESM build file by file), a third of the bench model's weights.
//   node scripts/bench/load_compiled.js BUILD_DIR MODEL_DIR      (one JSON line on stdout)
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

async function main() {
  const [buildDir, model] = process.argv.slice(2);
  if (!buildDir || !model) throw new Error('usage: node scripts/bench/load_compiled.js BUILD_DIR MODEL_DIR');
  const { initBackend, shutdownBackend } = require(path.resolve(buildDir, 'lib', 'backend'));
  const { loadModel } = require(path.resolve(buildDir, 'models', 'glm4v', 'auto'));
  const backend = await initBackend({ quiet: true });
  const before = procMiB('VmRSS');
  const t0 = performance.now();
  const m = loadModel(model);
  const ms = performance.now() - t0;
  const out = { backend, load_ms: ms, rss_before_mib: before, peak_rss_mib: procMiB('VmHWM'), rss_after_mib: procMiB('VmRSS'), params: m.numParameters() };
  m.dispose();
  shutdownBackend();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`load_compiled: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
