// glm46v parity: runs a reference-tensor file's inputs through the model and compares every tensor it holds.
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '../lib/backend';
import { ReferenceKind, referenceKind, runParity } from './parity_runner';
import { readAllSafetensors, SafetensorsFile } from '../lib/safetensors';
import { loadModel } from '../models/glm4v/auto';
import { generateGreedy } from './parity_generate';
import { CliError, parseArgs } from './args';

const USAGE = 'usage: glm46v parity [--model DIR] --reference FILE [--atol A] [--rtol R]';

/** Where the checks of the reference files that are not model references run (in the repository). */
const CHECKED_BY: Partial<Record<ReferenceKind, string>> = {
  'rope-index': 'spec/models/glm4v/rope_index.spec.ts',
  'image-processor': 'spec/processors/',
  processor: 'spec/processors/',
  'vision-tower': 'spec/models/glm4v/vision.spec.ts',
  optimizer: 'spec/train/adamw.spec.ts',
};

const WANTS = 'glm46v parity compares model outputs (out:*, logits, loss, grad:*, gen:sequences) computed from in:input_ids';

/** Refuses a reference file of another kind (rope-index, processor, ...) before the model is loaded, saying which. */
function checkReferenceKind(file: string, names: string[]): void {
  const { kind, evidence } = referenceKind(names);
  if (kind === 'model') return;
  if (kind === 'unknown') throw new CliError(`${file} is not a model reference (${evidence}): ${WANTS}`);
  const article = /^[aeiou]/.test(kind) ? 'an' : 'a';
  throw new CliError(`${file} is ${article} ${kind} reference (${evidence}): ${WANTS}; its checks run in ${CHECKED_BY[kind]}`);
}

/** --model, else the file's metadata `model` (relative to the file), with a config.json in it. */
function modelFolder(file: string, given: string | undefined, metadata: Record<string, string>): string {
  if (given !== undefined) {
    if (!fs.existsSync(path.join(given, 'config.json'))) throw new CliError(`--model ${given} is not readable: no config.json`);
    return given;
  }
  if (!metadata.model) throw new CliError(`${file} names no model in its metadata: pass --model DIR`);
  const dir = path.resolve(path.dirname(file), metadata.model);
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new CliError(`${file} names the model folder ${dir} in its metadata, which has no config.json: pass --model DIR`);
  return dir;
}

/** The names and metadata of a reference file, from its header alone. */
function readHeader(file: string): { names: string[]; metadata: Record<string, string> } {
  if (!fs.existsSync(file)) throw new CliError(`--reference ${file} does not exist`);
  const f = new SafetensorsFile(file);
  try {
    return { names: [...f.tensors.keys()], metadata: f.metadata };
  } finally {
    f.close();
  }
}

export const command = {
  summary: 'compare the model with a reference-tensor file',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, {
      model: { type: 'string', help: "model folder (default: the file's metadata `model`, relative to the file)" },
      reference: { type: 'string', required: true, help: 'reference-tensor file made by scripts/parity/' },
      atol: { type: 'number', min: 0, help: 'absolute tolerance (default 1e-4)' },
      rtol: { type: 'number', min: 0, help: 'relative tolerance (default 0)' },
    }, USAGE);
    if (!a) return;
    const file = a.reference as string;
    const atol = (a.atol as number | undefined) ?? 1e-4, rtol = (a.rtol as number | undefined) ?? 0;
    const header = readHeader(file);
    checkReferenceKind(file, header.names);
    const modelDir = modelFolder(file, a.model as string | undefined, header.metadata);
    const { tensors } = readAllSafetensors(file);
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
