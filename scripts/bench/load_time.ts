// Load time, CPU time and peak RSS of loadModel on the bench model in this process (under tsx, so the RSS includes
// tsx's; bench.ts --rows load measures the compiled package), then the first and second 4-token prefill and the peak after them: a backend that
// defers the upload of the weights to their first use shows its peak there.
// Usage: npx tsx scripts/bench/load_time.ts [model dir]
import { initBackend } from '../../lib/backend';
import * as fs from 'fs';
import { loadModel } from '../../models/glm4v/auto';
import { DEFAULT_DIR } from './make_bench_model';
async function main() {
  await initBackend({ quiet: true });
  const rss = (f: string) => Number(fs.readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm'))![1]) / 1024;
  const before = rss('VmRSS');
  const c0 = process.cpuUsage(); const t0 = performance.now();
  const m = loadModel(process.argv[2] ?? DEFAULT_DIR);
  const c = process.cpuUsage(c0);
  console.log(`load ${(performance.now() - t0).toFixed(0)} ms wall, ${((c.user + c.system) / 1000).toFixed(0)} ms CPU; RSS before ${before.toFixed(0)} MiB, peak ${rss('VmHWM').toFixed(0)} MiB`);
  const peakLoad = rss('VmHWM');
  const { prefill } = await import('../../generation/generate');
  const t1 = performance.now();
  (await prefill(m, { inputIds: [[1, 2, 3, 4]] })).state.cache.dispose();
  const first = performance.now() - t1;
  const t2 = performance.now();
  (await prefill(m, { inputIds: [[1, 2, 3, 4]] })).state.cache.dispose();
  const second = performance.now() - t2;
  console.log(`first 4-token prefill ${first.toFixed(0)} ms, second ${second.toFixed(0)} ms; after load ${peakLoad.toFixed(0)} MiB peak; after the prefills: peak ${rss('VmHWM').toFixed(0)} MiB, RSS ${rss('VmRSS').toFixed(0)} MiB`);
  m.dispose();
}
main();
