// A small argument parser for the sub-commands: --flag value, repeated flags, booleans, and --help.
import { packageFile } from '../lib/package_root';

/** The small model shipped inside the package, used where --model is omitted (found from the checkout or dist/). */
export const BUILTIN_MODEL = packageFile('assets', 'model');

export class CliError extends Error {
  override name = 'CliError';
}

export interface FlagSpec {
  /** 'string' | 'number' | 'boolean'; `multiple` collects repeated flags into a list */
  type: 'string' | 'number' | 'boolean';
  multiple?: boolean;
  help: string;
}

export type Parsed = Record<string, string | number | boolean | string[] | undefined>;

export function parseArgs(argv: string[], specs: Record<string, FlagSpec>, usage: string): Parsed | undefined {
  const out: Parsed = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      const lines = Object.entries(specs).map(([k, s]) => `  --${k}${s.type === 'boolean' ? '' : ' ' + s.type.toUpperCase()}  ${s.help}`);
      process.stdout.write(`${usage}\n\noptions:\n${lines.join('\n')}\n`);
      return undefined;
    }
    if (!a.startsWith('--')) throw new CliError(`unexpected argument '${a}'`);
    const [key, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const spec = specs[key];
    if (!spec) throw new CliError(`unknown option --${key}`);
    if (spec.type === 'boolean') {
      out[key] = true;
      continue;
    }
    const v = inline ?? argv[++i];
    if (v === undefined) throw new CliError(`--${key} needs a value`);
    let value: string | number = v;
    if (spec.type === 'number') {
      value = Number(v);
      if (!Number.isFinite(value)) throw new CliError(`--${key}: '${v}' is not a number`);
    }
    if (spec.multiple) out[key] = [...((out[key] as string[] | undefined) ?? []), String(value)];
    else out[key] = value;
  }
  return out;
}
