// `fs` in the browser bundle (esbuild alias): the few synchronous calls that modules outside lib/byte_source.ts
// still make (chat template, video and generation configs) answered from the byte source the page filled; every
// other call fails naming itself, so Node-only code (writers, ffmpeg) says it has no file system here.
import { files } from '../../lib/byte_source';

export const existsSync = (p: string): boolean => files().exists(p);

export function readFileSync(p: string, enc?: string | { encoding?: string }): Uint8Array | string {
  const utf8 = enc === 'utf8' || enc === 'utf-8' || (typeof enc === 'object' && enc?.encoding === 'utf8');
  return utf8 ? files().readText(p) : files().readBytes(p);
}

export function statSync(p: string): { isFile: () => boolean; isDirectory: () => boolean } {
  const f = files();
  if (!f.exists(p)) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  return { isFile: () => f.isFile(p), isDirectory: () => !f.isFile(p) };
}

const missing = (name: string) => () => {
  throw new Error(`fs.${name} is not available in the browser`);
};
export const openSync = missing('openSync'), readSync = missing('readSync'), closeSync = missing('closeSync');
export const fstatSync = missing('fstatSync'), writeSync = missing('writeSync'), fsyncSync = missing('fsyncSync');
export const mkdirSync = missing('mkdirSync'), renameSync = missing('renameSync'), rmSync = missing('rmSync');
export const readdirSync = missing('readdirSync'), writeFileSync = missing('writeFileSync'), mkdtempSync = missing('mkdtempSync');
export const promises = {};
export default { existsSync, readFileSync, statSync, openSync, readSync, closeSync, fstatSync, writeSync, fsyncSync, mkdirSync, renameSync, rmSync, readdirSync, writeFileSync, mkdtempSync, promises };
