// glm46v serve: the OpenAI-compatible server (server/server.ts) on a model folder, until Ctrl-C.
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '../lib/backend';
import { createServer } from '../server/server';
import { BUILTIN_MODEL, CliError, parseArgs } from './args';

const USAGE = 'usage: glm46v serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--allow-files DIR] [--served-model-name NAME] [--max-batch N]';

export const command = {
  summary: 'an OpenAI-compatible chat completions server with tool calling',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, {
      model: { type: 'string', help: 'Hugging Face checkpoint folder (default: the built-in model)' },
      host: { type: 'string', help: 'address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)' },
      port: { type: 'number', integer: true, min: 0, max: 65535, help: 'port (default 8000; 0 picks a free one)' },
      'allow-files': { type: 'string', help: 'image_url may name local files, only under this folder' },
      'served-model-name': { type: 'string', help: "the id clients pass as `model` (default: the folder's name; glm46v for the built-in model)" },
      'max-batch': { type: 'number', integer: true, min: 1, max: 256, help: 'most requests in the running batch; later ones wait in arrival order (default 32)' },
    }, USAGE);
    if (!a) return;
    const dir = (a.model as string | undefined) ?? BUILTIN_MODEL;
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new CliError(`model folder ${dir} is not readable: no config.json`);
    const allow = a['allow-files'] as string | undefined;
    if (allow && !fs.statSync(allow, { throwIfNoEntry: false })?.isDirectory()) throw new CliError(`--allow-files ${allow} is not a folder`);
    await initBackend();
    const server = createServer({
      modelDir: dir,
      modelName: (a['served-model-name'] as string | undefined) ?? (a.model ? path.basename(path.resolve(dir)) : 'glm46v'),
      ...(allow ? { allowFiles: allow } : {}),
      ...(a['max-batch'] !== undefined ? { maxBatch: a['max-batch'] as number } : {}),
    });
    const url = await server.listen((a.port as number | undefined) ?? 8000, (a.host as string | undefined) ?? '127.0.0.1')
      .catch((e: NodeJS.ErrnoException) => { throw new CliError(`cannot listen: ${e.code ?? e.message}`); });
    process.stderr.write(`glm46v serve: model ${server.modelName} at ${url}/v1 (Ctrl-C stops)\n`);
    await new Promise<void>((resolve) => {
      const stop = () => void server.close().then(resolve);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    server.model.dispose();
  },
};
