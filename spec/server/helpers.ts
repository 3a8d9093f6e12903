// Shared pieces of the server specs: a server on the built-in model bound to 127.0.0.1:0, its log, and the README's
// example questions with their answers (assets/examples/examples.json).
import * as fs from 'fs';
import * as path from 'path';
import OpenAI from 'openai';
import { createServer, GlmServer, ServeOptions } from '../../server/server';

export const ROOT = path.join(__dirname, '..', '..');
export const BUILTIN = path.join(ROOT, 'assets', 'model');
export const EXAMPLES_DIR = path.join(ROOT, 'assets', 'examples');

export interface Example { image: string; question: string; answer: string }
export const EXAMPLES = JSON.parse(fs.readFileSync(path.join(EXAMPLES_DIR, 'examples.json'), 'utf8')) as Example[];

export function dataUrl(file: string): string {
  return `data:image/png;base64,${fs.readFileSync(file).toString('base64')}`;
}

export function imageQuestion(ex: Example): OpenAI.ChatCompletionMessageParam[] {
  return [{ role: 'user', content: [
    { type: 'image_url', image_url: { url: dataUrl(path.join(EXAMPLES_DIR, ex.image)) } },
    { type: 'text', text: ex.question },
  ] }];
}

export interface Running { server: GlmServer; url: string; client: OpenAI; logs: string[]; stop(): Promise<void> }

/** A server on the built-in model (unless opts say otherwise), on an ephemeral loopback port. */
export async function startServer(opts: Partial<ServeOptions> = {}): Promise<Running> {
  const logs: string[] = [];
  const server = createServer({ modelDir: BUILTIN, modelName: 'glm46v', log: (l) => logs.push(l), ...opts });
  const url = await server.listen(0, '127.0.0.1');
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  return {
    server, url, client, logs,
    async stop() {
      await server.close();
      server.model.dispose();
    },
  };
}

/** Polls until `cond` holds (the server logs a request when its response closes, just after the client sees it). */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
