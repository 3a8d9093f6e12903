// glm46v serve under bad and awkward requests: OpenAI-style JSON errors with the right status and no stack trace,
// image URLs (http on loopback, --allow-files), a client that goes away, a reader that never reads; the server
// keeps serving through all of it.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as path from 'path';
import { PNG } from 'pngjs';
import { EXAMPLES_DIR, Running, dataUrl, startServer, until } from './helpers';

const LONG = 'ab '.repeat(3000);

async function post(url: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  expect(text).to.not.match(/\n\s+at /); // no stack trace, ever
  return { status: res.status, json: JSON.parse(text) };
}

const chat = (content: unknown, extra: object = {}) => ({ model: 'glm46v', messages: [{ role: 'user', content }], ...extra });
const count = (url: string) => [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'How many shapes are there?' }];

describe('glm46v serve: limits, errors and awkward clients', () => {
  let s: Running;
  let files: http.Server;
  let filesUrl = '';
  before(async () => {
    s = await startServer({
      maxBodyBytes: 200_000, maxImagePixels: 150 * 150, maxImageBytes: 100_000, fetchTimeoutMs: 300, allowFiles: EXAMPLES_DIR,
      script: (prompt) => (prompt.includes('Talk at length.') ? LONG : undefined),
    });
    // a loopback file server: count.png, a big file, and a URL that never answers
    files = http.createServer((req, res) => {
      if (req.url === '/count.png') return void res.end(fs.readFileSync(path.join(EXAMPLES_DIR, 'count.png')));
      if (req.url === '/big.png') return void res.end(Buffer.alloc(200_000));
      // /slow: never answers
    });
    await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
    filesUrl = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  });
  after(async () => {
    files.closeAllConnections();
    files.close();
    await s.stop();
  });

  const cases: [string, () => Promise<{ status: number; json: any }>, number, RegExp][] = [
    ['bad JSON', () => post(s.url, '{"model": '), 400, /not valid JSON/],
    ['a body over the limit', () => post(s.url, chat('x'.repeat(300_000))), 413, /over the limit of 200000/],
    ['an unknown model', () => post(s.url, { ...chat('hi'), model: 'gpt-4o' }), 404, /the model "gpt-4o" does not exist/],
    ['an unsupported parameter', () => post(s.url, chat('hi', { logit_bias: { 1: 2 } })), 400, /unsupported parameter: logit_bias/],
    ['n > 1', () => post(s.url, chat('hi', { n: 2 })), 400, /unsupported value for n: 2/],
    ['a bad temperature', () => post(s.url, chat('hi', { temperature: -1 })), 400, /temperature must be a number in \[0, 2\], got -1/],
    ['no messages', () => post(s.url, { model: 'glm46v', messages: [] }), 400, /messages must be a non-empty list/],
    ['a prompt past the context', () => post(s.url, chat('hi', { max_tokens: 5000 })), 400, /context is 4096 tokens; the messages take \d+ and 5000 for the completion/],
    ['an image over the pixel limit', () => post(s.url, chat(count(bigPng()))), 400, /image of 200x200 pixels is over the limit of 22500/],
    ['an image that is not PNG or JPEG', () => post(s.url, chat(count('data:image/png;base64,aGVsbG8gd29ybGQ='))), 400, /not a PNG or JPEG file/],
    ['an unsupported part type', () => post(s.url, chat([{ type: 'input_audio', input_audio: {} }])), 400, /content type "input_audio" is not supported/],
    ['a file outside --allow-files', () => post(s.url, chat(count('../model/config.json'))), 400, /outside the allowed folder/],
    ['a download over the byte limit', () => post(s.url, chat(count(`${filesUrl}/big.png`))), 413, /image of 200000 bytes is over the limit of 100000/],
    ['a download that times out', () => post(s.url, chat(count(`${filesUrl}/slow.png`))), 400, /no answer within 300 ms/],
    ['an unknown route', async () => { const r = await fetch(`${s.url}/v1/completions`, { method: 'POST' }); return { status: r.status, json: await r.json() }; }, 404, /no route POST \/v1\/completions/],
  ];
  for (const [what, send, status, message] of cases) {
    it(`refuses ${what} with ${status} and an OpenAI error object`, async () => {
      const r = await send();
      expect(r.status).to.equal(status);
      expect(r.json.error.message).to.match(message);
      expect(r.json.error.type).to.equal(status === 404 ? 'not_found_error' : 'invalid_request_error');
    });
  }

  it('reads images from http URLs and from files under --allow-files', async () => {
    for (const url of [`${filesUrl}/count.png`, 'count.png', path.join(EXAMPLES_DIR, 'count.png')]) {
      const r = await post(s.url, chat(count(url)));
      expect(r.status, url).to.equal(200);
      expect(r.json.choices[0].message.content, url).to.equal('2');
    }
  });

  it('stops the generation of a client that disconnects and frees its tensors', async () => {
    const tensors = tf.memory().numTensors;
    const ac = new AbortController();
    const res = await fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify(chat('Talk at length.', { stream: true, max_tokens: 4000 })),
    });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    await until(() => s.logs.some((l) => l.includes('client_closed')));
    await s.server.scheduler.idle();
    const line = s.logs.find((l) => l.includes('client_closed'))!;
    const generated = Number(/completion_tokens=(\d+)/.exec(line)![1]);
    expect(generated).to.be.lessThan(1000);
    expect(tf.memory().numTensors).to.equal(tensors);
  });

  it('serves other clients while one never reads its stream', async () => {
    const stalled = http.request(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
    stalled.end(JSON.stringify(chat('Talk at length.', { stream: true, max_tokens: 3000 })));
    const response = await new Promise<http.IncomingMessage>((r) => stalled.on('response', r));
    response.pause(); // never reads: its socket fills up
    const t0 = Date.now();
    const r = await post(s.url, chat(count(dataUrl(path.join(EXAMPLES_DIR, 'count.png')))));
    expect(r.json.choices[0].message.content).to.equal('2');
    expect(Date.now() - t0).to.be.lessThan(20_000);
    stalled.destroy();
    await s.server.scheduler.idle();
  });

  it('still answers after all of that', async () => {
    const r = await post(s.url, chat(count(dataUrl(path.join(EXAMPLES_DIR, 'count.png')))));
    expect(r.status).to.equal(200);
    expect((await fetch(`${s.url}/health`)).status).to.equal(200);
  });
});

/** A 200x200 white PNG as a data URL (over the spec's 150x150 pixel limit, under its byte limit). */
function bigPng(): string {
  const png = new PNG({ width: 200, height: 200 });
  png.data.fill(255);
  return `data:image/png;base64,${PNG.sync.write(png).toString('base64')}`;
}
