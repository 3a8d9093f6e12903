// Where the package's readers get their bytes: the disk in Node, a map of fetched files in the browser.
// safetensors, checkpoints, configs and the tokenizer read through `files()`, so one set of readers serves both; the
// Node source is the default, and the browser build swaps in a MemorySource (web/browser.ts) and never calls fs.
import * as fs from 'fs';

/** An open file read at positions (safetensors shards are read one tensor at a time). */
export interface RandomAccess {
  readonly size: number;
  /** Fills `into` from byte `position`; returns how many bytes were read (fewer only at the end). */
  read(into: Uint8Array, position: number): number;
  close(): void;
}

export interface ByteSource {
  exists(path: string): boolean;
  isFile(path: string): boolean;
  readBytes(path: string): Uint8Array;
  readText(path: string): string;
  open(path: string): RandomAccess;
}

/** An error of the byte source with the errno-like code the readers put in their messages (ENOENT, EISDIR). */
export class ByteSourceError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** Node's file system, synchronous as the readers are. */
export const diskSource: ByteSource = {
  exists: (p) => fs.existsSync(p),
  isFile: (p) => fs.existsSync(p) && fs.statSync(p).isFile(),
  readBytes: (p) => fs.readFileSync(p),
  readText: (p) => fs.readFileSync(p, 'utf8'),
  open(p) {
    let fd: number | undefined = fs.openSync(p, 'r');
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) {
      fs.closeSync(fd);
      throw new ByteSourceError('EISDIR', `${p}: not a file`);
    }
    return {
      size: stat.size,
      read(into, position) {
        if (fd === undefined) throw new ByteSourceError('EBADF', `${p}: file is closed`);
        let off = 0;
        while (off < into.length) {
          const r = fs.readSync(fd, into, off, Math.min(into.length - off, 1 << 30), position + off);
          if (r <= 0) break;
          off += r;
        }
        return off;
      },
      close() {
        if (fd !== undefined) fs.closeSync(fd);
        fd = undefined;
      },
    };
  },
};

/** Whole files held in memory under path-like keys ('model/config.json'): what the browser fetched. */
export class MemorySource implements ByteSource {
  readonly files = new Map<string, Uint8Array>();

  set(path: string, bytes: Uint8Array): void {
    this.files.set(normalize(path), bytes);
  }

  exists(path: string): boolean {
    const p = normalize(path);
    return this.files.has(p) || [...this.files.keys()].some((k) => k.startsWith(`${p}/`));
  }

  isFile(path: string): boolean {
    return this.files.has(normalize(path));
  }

  readBytes(path: string): Uint8Array {
    const b = this.files.get(normalize(path));
    if (!b) throw new ByteSourceError(this.exists(path) ? 'EISDIR' : 'ENOENT', `${path}: not loaded`);
    return b;
  }

  readText(path: string): string {
    return new TextDecoder().decode(this.readBytes(path));
  }

  open(path: string): RandomAccess {
    const b = this.readBytes(path);
    return {
      size: b.length,
      read(into, position) {
        const part = b.subarray(position, position + into.length);
        into.set(part);
        return part.length;
      },
      close() {},
    };
  }
}

/** 'a/./b//c' -> 'a/b/c', '/x' keeps its slash: the keys a page and path.join agree on. */
function normalize(p: string): string {
  const parts: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..' && parts.length && parts[parts.length - 1] !== '..') parts.pop();
    else parts.push(s);
  }
  return (p.startsWith('/') ? '/' : '') + parts.join('/');
}

let current: ByteSource = diskSource;

/** The source every reader uses now. */
export const files = (): ByteSource => current;

/** Replaces the source (the browser entry does this once, before loading anything). */
export function useByteSource(source: ByteSource): void {
  current = source;
}

/** The code of an error from the source or from fs ('ENOENT'), else its message, for one-line errors. */
export const errorCode = (e: unknown): string => (e as { code?: string }).code ?? (e as Error).message;
