// Writes the raw float32 logits of prefill + 8 greedy decode steps (batch 1, batch 2, and a 1-token prefill) on the
// bench model to a file: run it before and after a change and `cmp` the two files to show that no value moved.
// Usage: npx tsx scripts/bench/dump_logits.ts OUT_FILE [model dir]
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '../../lib/backend';
import { decodeOne, prefill } from '../../generation/generate';
import { SafetensorsFile } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { DEFAULT_DIR } from './make_bench_model';
async function main() {
  await initBackend({ quiet: true });
  const dir = path.resolve(process.argv[3] ?? DEFAULT_DIR);
  const model = loadModel(dir);
  const inp = new SafetensorsFile(path.join(dir, 'inputs.safetensors'));
  const ids = Array.from(inp.read('decode.context_ids').data).slice(0, 100).map(Number);
  inp.close();
  const outs: Float32Array[] = [];
  for (const batch of [[ids], [ids, ids.slice().reverse()], [ids.slice(0, 1)]]) {
  const r = await prefill(model, { inputIds: batch });
  outs.push(...r.logits);
  let last = r.logits;
  for (let s = 0; s < 8; s++) {
    const toks = last.map((l: Float32Array) => l.indexOf(Math.max(...l)));
    last = await decodeOne(model, toks, r.state);
    outs.push(...last);
  }
  r.state.cache.dispose();
  }
  const all = Buffer.concat(outs.map((o) => Buffer.from(o.buffer, o.byteOffset, o.byteLength)));
  fs.writeFileSync(process.argv[2]!, all);
  console.log('wrote', all.length);
}
main();
