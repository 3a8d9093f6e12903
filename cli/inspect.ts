// glm46v inspect --model DIR: the parsed config, the parameter count and every weight (name, shape, dtype) of a
// Hugging Face checkpoint folder. Reads only the safetensors headers; no tensor data and no backend.
import * as fs from 'fs';
import * as path from 'path';
import { CheckpointReader } from '../lib/checkpoint';
import { readJson } from '../lib/config';
import { parseGlm4vConfig } from '../models/glm4v/config';
import { Glm4vTextModel } from '../models/glm4v/text';
import { isIgnoredKey } from '../models/glm4v/weights';
import { isMoeConfig } from '../models/glm4v_moe/config';
import { inspectMoe } from '../models/glm4v_moe/inspect';
import { BUILTIN_MODEL, CliError, parseArgs } from './args';

const USAGE = 'usage: glm46v inspect [--model DIR]';

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

export const command = {
  summary: "print a checkpoint's config, parameter count and weights",
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, { model: { type: 'string', help: 'Hugging Face checkpoint folder (default: the built-in model)' } }, USAGE);
    if (!a) return;
    const dir = (a.model as string | undefined) ?? BUILTIN_MODEL;
    const configFile = path.join(dir, 'config.json');
    if (!fs.existsSync(configFile)) throw new CliError(`model folder ${dir} is not readable: no config.json`);
    if (isMoeConfig(readJson(configFile))) return void process.stdout.write(inspectMoe(dir, configFile).join('\n') + '\n');
    const config = parseGlm4vConfig(readJson(configFile), configFile);
    const { raw: _raw, ...parsed } = config;
    const out: string[] = [`config: ${configFile}`, JSON.stringify(parsed, null, 2), ''];

    const reader = new CheckpointReader(dir);
    try {
      const keys = reader.keys().sort((x, y) => x.localeCompare(y, 'en', { numeric: true }));
      const groups = new Map<string, number>();
      let total = 0;
      out.push('weights:');
      for (const k of keys) {
        const { shape, dtype } = reader.info(k);
        const n = numel(shape);
        total += n;
        const group = k.startsWith('model.') ? k.split('.').slice(0, 2).join('.') : k.split('.')[0]!;
        groups.set(group, (groups.get(group) ?? 0) + n);
        out.push(`  ${k}  ${JSON.stringify(shape)}  ${dtype}${isIgnoredKey(k) ? '  (ignored on load)' : ''}`);
      }
      out.push('', 'parameters:');
      for (const [g, n] of groups) out.push(`  ${g}: ${n.toLocaleString('en-US')}`);
      // The text decoder's own count from the config: a mismatch points at a config/checkpoint disagreement.
      const expected = new Glm4vTextModel(config.text_config).numParameters();
      out.push(`  (config expects ${expected.toLocaleString('en-US')} in model.language_model)`);
      out.push(`inspect: ${keys.length} tensors, ${total} parameters`);
    } finally {
      reader.close();
    }
    process.stdout.write(out.join('\n') + '\n');
  },
};
