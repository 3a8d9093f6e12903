// glm46v web: serves the browser page (web/), its bundle (out/web/, built by scripts/web/build.mjs), the wasm
// backend's .wasm files and the built-in model on 127.0.0.1, read-only, until Ctrl-C (or --exit-after seconds).
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import { packageFile } from '../lib/package_root';
import { BUILTIN_MODEL, CliError, parseArgs } from './args';

const USAGE = 'usage: glm46v web [--port N] [--model DIR] [--exit-after SECONDS]';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.jpg': 'image/jpeg', '.jinja': 'text/plain; charset=utf-8',
};

/** URL prefix -> folder. /fixtures serves the reference files of a checkout (the browser specs), when present. */
function routes(modelDir: string): Array<[string, string]> {
  const wasm = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  const r: Array<[string, string]> = [
    ['/bundle/', packageFile('out', 'web')], ['/wasm/', wasm], ['/model/', modelDir],
    ['/examples/', packageFile('assets', 'examples')], ['/', packageFile('web')],
  ];
  const fixtures = packageFile('spec', 'fixtures');
  if (fs.existsSync(fixtures)) r.unshift(['/fixtures/', fixtures]);
  return r;
}

/** The file a GET names, or undefined: no escape from the served folders, no folder listings. */
function resolveFile(table: Array<[string, string]>, urlPath: string): string | undefined {
  let p: string;
  try {
    p = decodeURIComponent(urlPath.split('?')[0]!);
  } catch {
    return undefined;
  }
  if (p === '/') p = '/index.html';
  const hit = table.find(([prefix]) => p.startsWith(prefix));
  if (!hit) return undefined;
  const file = path.resolve(hit[1], `.${p.slice(hit[0].length - 1)}`);
  if (!file.startsWith(path.resolve(hit[1]) + path.sep)) return undefined;
  return fs.statSync(file, { throwIfNoEntry: false })?.isFile() ? file : undefined;
}

function handler(table: Array<[string, string]>): http.RequestListener {
  return (req, res) => {
    const file = req.method === 'GET' || req.method === 'HEAD' ? resolveFile(table, req.url ?? '/') : undefined;
    if (!file) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405, { 'content-type': 'text/plain' });
      res.end(`not found: ${req.url}\n`);
      return;
    }
    const size = fs.statSync(file).size;
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': size, 'cache-control': 'no-store' });
    if (req.method === 'HEAD') res.end();
    else fs.createReadStream(file).pipe(res);
  };
}

/** The bundle, built now when a checkout has esbuild and no bundle yet. */
async function ensureBundle(): Promise<void> {
  if (!fs.existsSync(packageFile('web', 'index.html'))) throw new CliError(`no page at ${packageFile('web')}: the installed package lacks web/ (reinstall it)`);
  if (fs.existsSync(packageFile('out', 'web', 'glm46v.js'))) return;
  const script = packageFile('scripts', 'web', 'build.mjs');
  if (!fs.existsSync(script)) throw new CliError(`no browser bundle at ${packageFile('out', 'web')}: run 'npm run build:web' in a checkout`);
  process.stderr.write('glm46v web: building the browser bundle (npm run build:web)\n');
  const load = new Function('u', 'return import(u)') as (u: string) => Promise<{ build: () => Promise<unknown> }>;
  await (await load(`file://${script}`)).build();
}

export const command = {
  summary: 'the browser page: ask the built-in model about a picture, on 127.0.0.1',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, {
      port: { type: 'number', integer: true, min: 0, max: 65535, help: 'port (default 8080; 0 picks a free one)' },
      model: { type: 'string', help: 'Hugging Face checkpoint folder to serve as /model/ (default: the built-in model)' },
      'exit-after': { type: 'number', min: 1, help: 'stop after this many seconds (tests)' },
    }, USAGE);
    if (!a) return;
    const dir = (a.model as string | undefined) ?? BUILTIN_MODEL;
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new CliError(`model folder ${dir} is not readable: no config.json`);
    await ensureBundle();
    const server = http.createServer(handler(routes(dir)));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new CliError(`cannot listen: ${e.code ?? e.message}`)));
      server.listen((a.port as number | undefined) ?? 8080, '127.0.0.1', resolve);
    });
    const { port } = server.address() as { port: number };
    process.stdout.write(`glm46v web: http://127.0.0.1:${port}/ (Ctrl-C stops)\n`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        server.close(() => resolve());
        server.closeAllConnections();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      if (a['exit-after'] !== undefined) setTimeout(stop, (a['exit-after'] as number) * 1000).unref();
    });
  },
};
