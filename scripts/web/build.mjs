// Bundles web/browser.ts and web/app.ts for the browser into out/web/ (run: node scripts/web/build.mjs).
// esbuild, not webpack/rollup/vite: one dev dependency with no plugins to keep, TypeScript stripped as tsx does in
// Node, a bundle of tfjs in about a second, and `alias`/`inject` for the Node built-ins the readers' modules import.
import * as esbuild from 'esbuild';
import * as fs from 'fs';
import * as path from 'path';
import { fileURLToPath } from 'url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT = path.join(ROOT, 'out', 'web');
const shim = (f) => path.join(ROOT, 'web', 'shims', f);

/** Node built-ins that package modules import: answered from the byte source (fs), POSIX joins (path), or refused. */
const alias = {
  fs: shim('fs.ts'),
  path: shim('path.ts'),
  child_process: shim('refuse.ts'),
  os: shim('refuse.ts'),
  url: shim('refuse.ts'),
  worker_threads: shim('refuse.ts'),
};

/** `pngjs` itself (not its subpaths: the shim imports pngjs/browser.js) becomes web/shims/pngjs.ts. */
const pngjsBrowser = {
  name: 'pngjs-browser',
  setup(b) {
    b.onResolve({ filter: /^pngjs$/ }, () => ({ path: shim('pngjs.ts') }));
  },
};

export async function build({ minify = false } = {}) {
  fs.rmSync(OUT, { recursive: true, force: true }); // no chunk of an earlier build left beside the new one
  fs.mkdirSync(OUT, { recursive: true });
  const result = await esbuild.build({
    entryPoints: { glm46v: path.join(ROOT, 'web', 'browser.ts'), app: path.join(ROOT, 'web', 'app.ts') },
    outdir: OUT,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    splitting: true,
    sourcemap: false,
    minify,
    alias,
    plugins: [pngjsBrowser],
    inject: [shim('globals.ts')],
    define: { global: 'globalThis' },
    logLevel: 'warning',
    metafile: true,
  });
  checkNoNodeBuiltins();
  return result;
}

/**
 * The bundle must not reach for Node: no require of a built-in survives. tfjs-backend-wasm carries its threaded
 * worker's source as a string (wasmWorkerContents, Node branch included); that text is not code the page runs.
 */
function checkNoNodeBuiltins() {
  for (const f of fs.readdirSync(OUT).filter((f) => f.endsWith('.js'))) {
    const text = fs.readFileSync(path.join(OUT, f), 'utf8').replace(/wasmWorkerContents = `[^`]*`/g, '');
    const hit = text.match(/require\(\s*["'](?:node:)?(fs|path|child_process|os|zlib|stream|worker_threads)["']\s*\)/);
    if (hit) throw new Error(`out/web/${f}: the bundle still contains ${hit[0]}`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const t0 = Date.now();
  await build();
  const size = fs.readdirSync(OUT).filter((f) => f.endsWith('.js')).reduce((s, f) => s + fs.statSync(path.join(OUT, f)).size, 0);
  console.log(`build:web: out/web/ (${(size / 1e6).toFixed(1)} MB of js) in ${Date.now() - t0} ms`);
}
