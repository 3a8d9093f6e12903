// glm46v parity: runs a reference-tensor file's inputs through the model and compares every tensor it holds.
import * as path from 'path';
import { initBackend } from '../lib/backend';
import { runParity } from '../lib/parity';
import { readAllSafetensors } from '../lib/safetensors';
import { loadModel } from '../models/glm4v/auto';
import { generateGreedy } from './parity_generate';
import { CliError, parseArgs } from './args';

const USAGE = 'usage: glm46v parity [--model DIR] --reference FILE [--atol A] [--rtol R]';

export const command = {
  summary: 'compare the model with a reference-tensor file',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, {
      model: { type: 'string', help: "model folder (default: the file's metadata `model`, relative to the file)" },
      reference: { type: 'string', help: 'reference-tensor file made by scripts/parity/' },
      atol: { type: 'number', help: 'absolute tolerance (default 1e-4)' },
      rtol: { type: 'number', help: 'relative tolerance (default 0)' },
    }, USAGE);
    if (!a) return;
    const file = a.reference as string | undefined;
    if (!file) throw new CliError(`--reference is required\n${USAGE}`);
    const atol = (a.atol as number | undefined) ?? 1e-4, rtol = (a.rtol as number | undefined) ?? 0;
    const { tensors, metadata } = readAllSafetensors(file);
    const modelDir = (a.model as string | undefined) ?? (metadata.model ? path.resolve(path.dirname(file), metadata.model) : undefined);
    if (!modelDir) throw new CliError(`${file} names no model in its metadata: pass --model DIR`);
    await initBackend();
    const model = loadModel(modelDir);
    try {
      const results = await runParity(model, tensors, { atol, rtol, generate: generateGreedy });
      const w = Math.max(...results.map((r) => r.name.length), 4);
      process.stdout.write(`${'name'.padEnd(w)}  ${'shape'.padEnd(16)}  max_abs_diff  max_rel_diff  ok\n`);
      for (const r of results) {
        process.stdout.write(`${r.name.padEnd(w)}  ${JSON.stringify(r.shape).padEnd(16)}  ${r.maxAbs.toExponential(3).padStart(12)}  ${r.maxRel.toExponential(3).padStart(12)}  ${r.ok ? 'ok' : 'FAIL'}${r.note ? `  (${r.note})` : ''}\n`);
      }
      const passed = results.filter((r) => r.ok).length;
      const worst = results.reduce((m, r) => (r.maxAbs > m.maxAbs ? r : m), results[0]!);
      process.stdout.write(`parity: ${passed}/${results.length} tensors within atol=${atol} rtol=${rtol}; worst ${worst.name} max_abs_diff=${worst.maxAbs.toExponential(3)}\n`);
      if (passed !== results.length) process.exitCode = 1;
    } finally {
      model.dispose();
    }
  },
};
