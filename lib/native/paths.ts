// Where the native TensorFlow backend lives and what its setup left behind (native/status.json).
// The package-local folder holds the built tfjs-node addon; the large TensorFlow libraries sit in a shared cache.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../package_root';

export type NativeVariant = 'cpu' | 'gpu';

/** What `glm46v setup` found: a working build, or why there is none. */
export interface NativeStatus {
  ok: boolean;
  variant: NativeVariant;
  /** one line: what is missing and how to add it later (when ok is false) */
  reason?: string;
  /** the user asked for no native backend (GLM46V_NATIVE=0) */
  optedOut?: boolean;
  tensorflow?: string;
  tfjsNode?: string;
}

/** GLM46V_NATIVE_DIR, else native/ in the package: the tfjs-node sources, the addons and status.json. */
export function nativeDir(): string {
  return process.env.GLM46V_NATIVE_DIR || path.join(packageRoot(), 'native');
}

/** GLM46V_CACHE, else $XDG_CACHE_HOME/glm46v or ~/.cache/glm46v: the unpacked TensorFlow libraries, shared. */
export function cacheDir(): string {
  if (process.env.GLM46V_CACHE) return process.env.GLM46V_CACHE;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'glm46v');
}

/** The tfjs-node package folder of a variant inside nativeDir(). */
export function addonPackageDir(variant: NativeVariant): string {
  return path.join(nativeDir(), variant === 'gpu' ? 'tfjs-node-gpu' : 'tfjs-node');
}

export function statusFile(): string {
  return path.join(nativeDir(), 'status.json');
}

export function readStatus(): NativeStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(statusFile(), 'utf8')) as NativeStatus;
  } catch {
    return undefined;
  }
}

/** Writes to a temporary file, then renames, so a reader never sees half a file. */
export function writeFileAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export function writeStatus(s: NativeStatus): void {
  writeFileAtomic(statusFile(), JSON.stringify(s, null, 2) + '\n');
}
