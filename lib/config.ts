// Small helpers for reading JSON configs with errors that name the file and the key path.
import { errorCode, files } from './byte_source';

/** A message on one line: line breaks inside quoted values (a key or a string from the file) are escaped. */
export const oneLine = (message: string) => message.replace(/\r?\n|[\r\u2028\u2029]/g, '\\n');

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(message: string) {
    super(oneLine(message));
  }
}

/** Parses a JSON file; errors name the file. */
export function readJson(file: string): unknown {
  let text: string;
  try {
    text = files().readText(file);
  } catch (e) {
    throw new ConfigError(`${file}: cannot read (${errorCode(e)})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    // V8 quotes the text around the error, newlines included: the message stays on one line.
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message.replace(/\s+/g, ' ')})`);
  }
}

/**
 * A value for an error message: its JSON, cut to `max` characters, and safe on values nested too deep for
 * JSON.stringify (a fuzzed config with a 20000-deep array must still give a one-line ConfigError).
 */
export function brief(v: unknown, max = 60): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? '[...]' : typeof v === 'object' ? '{...}' : String(v);
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Typed field readers: each takes the object, its key path (for messages), the key and a default. */
export function num(o: Json, at: string, key: string, def?: number): number {
  const v = o[key] ?? def;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${at}${key}: expected a number, got ${brief(o[key])}`);
  return v;
}

export function int(o: Json, at: string, key: string, def?: number, min = 0): number {
  const v = num(o, at, key, def);
  if (!Number.isInteger(v) || v < min) throw new ConfigError(`${at}${key}: expected an integer >= ${min}, got ${v}`);
  return v;
}

export function str(o: Json, at: string, key: string, def?: string): string {
  const v = o[key] ?? def;
  if (typeof v !== 'string') throw new ConfigError(`${at}${key}: expected a string, got ${brief(o[key])}`);
  return v;
}

export function bool(o: Json, at: string, key: string, def?: boolean): boolean {
  const v = o[key] ?? def;
  if (typeof v !== 'boolean') throw new ConfigError(`${at}${key}: expected true or false, got ${brief(o[key])}`);
  return v;
}

/** An int or a list of ints (eos_token_id), returned as a list. */
export function intList(o: Json, at: string, key: string, def: number[] = []): number[] {
  const v = o[key];
  if (v === undefined || v === null) return def;
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => Number.isInteger(x))) throw new ConfigError(`${at}${key}: expected an integer or a list of integers, got ${brief(v)}`);
  return list as number[];
}
