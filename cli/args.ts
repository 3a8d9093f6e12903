// A small argument parser for the sub-commands: --flag value, repeated flags, booleans, and --help. Each flag's spec
// declares what it accepts (required, integer, range, choices), so every command refuses a bad value in one line.
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
  required?: boolean;
  /** number flags: whole numbers only */
  integer?: boolean;
  /** number flags: the allowed range, inclusive unless `minExclusive` / `maxExclusive` */
  min?: number;
  max?: number;
  minExclusive?: boolean;
  maxExclusive?: boolean;
  /** string flags: the only values allowed */
  choices?: string[];
}

export type Parsed = Record<string, string | number | boolean | string[] | undefined>;

/** What a number flag accepts, in words: "an integer >= 1", "a number in (0, 1]", "a number > 0". */
export function describeRange(s: FlagSpec): string {
  const kind = s.integer ? 'an integer' : 'a number';
  const { min, max } = s;
  if (min !== undefined && max !== undefined) return `${kind} in ${s.minExclusive ? '(' : '['}${min}, ${max}${s.maxExclusive ? ')' : ']'}`;
  if (min !== undefined) return `${kind} ${s.minExclusive ? '>' : '>='} ${min}`;
  if (max !== undefined) return `${kind} ${s.maxExclusive ? '<' : '<='} ${max}`;
  return kind;
}

function inRange(v: number, s: FlagSpec): boolean {
  if (!Number.isFinite(v) || (s.integer && !Number.isInteger(v))) return false;
  if (s.min !== undefined && (s.minExclusive ? v <= s.min : v < s.min)) return false;
  return s.max === undefined || (s.maxExclusive ? v < s.max : v <= s.max);
}

/** Checks one flag's text against its spec and converts it. */
function flagValue(key: string, text: string, s: FlagSpec): string | number {
  if (s.type === 'string') {
    if (text === '') throw new CliError(`--${key} must not be empty`);
    if (s.choices && !s.choices.includes(text)) throw new CliError(`--${key} must be one of ${s.choices.join(', ')}, got '${text}'`);
    return text;
  }
  // Number('') and Number(' ') are 0: a blank value is not a number
  const v = text.trim() === '' ? NaN : Number(text);
  if (!inRange(v, s)) throw new CliError(`--${key} must be ${describeRange(s)}, got ${Number.isNaN(v) ? `'${text}'` : text}`);
  return v;
}

function helpText(usage: string, specs: Record<string, FlagSpec>): string {
  const lines = Object.entries(specs).map(([k, s]) => {
    const allowed = s.type === 'number' ? describeRange(s) : s.choices ? `one of ${s.choices.join(', ')}` : '';
    return `  --${k}${s.type === 'boolean' ? '' : ' ' + s.type.toUpperCase()}  ${s.help}${allowed ? ` [${allowed}]` : ''}`;
  });
  return `${usage}\n\noptions:\n${lines.join('\n')}\n`;
}

/** Parses `argv` against `specs`; prints the help and returns undefined on --help. Throws CliError on bad input. */
export function parseArgs(argv: string[], specs: Record<string, FlagSpec>, usage: string): Parsed | undefined {
  const out: Parsed = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--help' || a === '-h') {
      process.stdout.write(helpText(usage, specs));
      return undefined;
    }
    if (!a.startsWith('--')) throw new CliError(`unexpected argument '${a}'`);
    const [key, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const spec = specs[key];
    if (!spec) throw new CliError(`unknown option --${key}`);
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new CliError(`--${key} takes no value, got '${inline}'`);
      out[key] = true;
      continue;
    }
    // `--out --resume`: the next word is another flag, not this one's value
    const next = argv[i + 1];
    const isFlag = next?.startsWith('--') === true && (next === '--help' || specs[next.slice(2).split('=')[0]!] !== undefined);
    if (inline === undefined && (next === undefined || isFlag)) throw new CliError(`--${key} needs a value`);
    const value = flagValue(key, inline ?? argv[++i]!, spec);
    if (spec.multiple) out[key] = [...((out[key] as string[] | undefined) ?? []), String(value)];
    else out[key] = value;
  }
  for (const [k, s] of Object.entries(specs)) if (s.required && out[k] === undefined) throw new CliError(`--${k} is required (see --help)`);
  return out;
}
