// `path` in the browser bundle (esbuild alias): POSIX joins over the byte source's keys ('model/config.json').
// Written here because the bundle must carry no Node built-in and path-browserify is not a dependency.
export const sep = '/';

export function normalize(p: string): string {
  const abs = p.startsWith('/');
  const out: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..' && out.length && out[out.length - 1] !== '..') out.pop();
    else if (s !== '..' || !abs) out.push(s);
  }
  return (abs ? '/' : '') + out.join('/') || (abs ? '/' : '.');
}

export const join = (...parts: string[]): string => normalize(parts.filter((s) => s !== '').join('/'));
export const isAbsolute = (p: string): boolean => p.startsWith('/');
/** Relative paths resolve against '' (the page's byte-source root), not a working directory. */
export function resolve(...parts: string[]): string {
  let out = '';
  for (const p of parts) out = isAbsolute(p) ? p : out ? `${out}/${p}` : p;
  return normalize(out);
}
export function dirname(p: string): string {
  const i = p.replace(/\/+$/, '').lastIndexOf('/');
  return i < 0 ? '.' : i === 0 ? '/' : p.slice(0, i);
}
export function basename(p: string, ext?: string): string {
  const b = p.replace(/\/+$/, '').split('/').pop() ?? '';
  return ext && b.endsWith(ext) ? b.slice(0, -ext.length) : b;
}
export function extname(p: string): string {
  const b = basename(p), i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}
export function relative(from: string, to: string): string {
  const a = normalize(from).split('/').filter(Boolean), b = normalize(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => '..'), ...b.slice(i)].join('/');
}
export const posix = { sep, normalize, join, isAbsolute, resolve, dirname, basename, extname, relative };
export default posix;
