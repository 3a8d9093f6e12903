// Load: 32 concurrent streaming openai clients on the built-in model. First each asks one of the README's example
// questions (image as a data URL; two-token answers, so admission-bound); then each asks for a 48-token recital (a
// scripted output: the model still runs every step, so decode-bound). All must get the right text; afterwards the
// tensor count is back where it was and RSS within 64 MiB. Prints p50/p95 latency and total tokens/s (the figures of
// docs/serving.md) and how the requests were batched.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type OpenAI from 'openai';
import { EXAMPLES, Running, imageQuestion, startServer } from './helpers';

const CLIENTS = 32;
const RSS_SLACK = 64 * 2 ** 20;
const RECITAL = 'one two three four five six seven eight nine ten';

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

interface Result { ms: number; firstMs: number; tokens: number; answer: string; expected: string }
type Ask = (i: number) => { messages: OpenAI.ChatCompletionMessageParam[]; expected: string };

const example: Ask = (i) => {
  const ex = EXAMPLES[i % EXAMPLES.length]!;
  return { messages: imageQuestion(ex), expected: ex.answer };
};
const recital: Ask = (i) => ({ messages: [{ role: 'user', content: `Recite, client ${i}.` }], expected: RECITAL });

describe('glm46v serve under load', () => {
  let s: Running;
  before(async () => {
    s = await startServer({ script: (prompt) => (prompt.includes('Recite, client') ? RECITAL : undefined) });
  });
  after(async () => s.stop());

  async function client(ask: Ask, i: number): Promise<Result> {
    const { messages, expected } = ask(i);
    const t0 = performance.now();
    let firstMs = 0;
    let answer = '';
    let tokens = 0;
    const stream = await s.client.chat.completions.create({ model: 'glm46v', messages, stream: true, stream_options: { include_usage: true } });
    for await (const c of stream) {
      const d = c.choices[0]?.delta.content;
      if (d && !firstMs) firstMs = performance.now() - t0;
      answer += d ?? '';
      if (c.usage) tokens = c.usage.completion_tokens;
    }
    return { ms: performance.now() - t0, firstMs, tokens, answer, expected };
  }

  /** 32 clients at once after a warm-up of 3; checks answers and memory, prints the figures. */
  async function measure(label: string, ask: Ask): Promise<void> {
    await Promise.all([0, 1, 2].map((i) => client(ask, i))); // warm-up: kernels compiled, buffers allocated
    await s.server.scheduler.idle();
    const tensors = tf.memory().numTensors;
    const rss = process.memoryUsage().rss;
    const admittedBefore = s.server.scheduler.admissions.length;
    s.server.scheduler.peakRows = 0;

    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(ask, i)));
    const wall = performance.now() - t0;
    await s.server.scheduler.idle();

    for (const r of results) expect(r.answer).to.equal(r.expected);
    expect(tf.memory().numTensors).to.equal(tensors);
    const grown = process.memoryUsage().rss - rss;
    expect(grown, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).to.be.lessThan(RSS_SLACK);

    const ms = results.map((r) => r.ms);
    const tokens = results.reduce((n, r) => n + r.tokens, 0);
    const admissions = s.server.scheduler.admissions.slice(admittedBefore);
    console.log(`      load ${label} (${tf.getBackend()}): ${CLIENTS} clients, ${admissions.length} prefills of [${admissions.join(', ')}] requests, `
      + `at most ${s.server.scheduler.peakRows} rows at once, p50 ${percentile(ms, 50).toFixed(0)} ms, `
      + `p95 ${percentile(ms, 95).toFixed(0)} ms, first token p50 ${percentile(results.map((r) => r.firstMs), 50).toFixed(0)} ms, `
      + `${tokens} tokens in ${wall.toFixed(0)} ms = ${(tokens / (wall / 1000)).toFixed(1)} tok/s, `
      + `tensors ${tensors} -> ${tf.memory().numTensors}, RSS ${(rss / 2 ** 20).toFixed(0)} -> ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
  }

  it(`${CLIENTS} concurrent streaming clients all get the README's answers, and memory comes back`, async () => {
    await measure('README questions', example);
  });

  it(`${CLIENTS} concurrent streaming clients each get a long answer, batched together, and memory comes back`, async () => {
    await measure('recitals', recital);
    expect(s.server.scheduler.peakRows, 'requests that arrive while others decode join their batch').to.be.greaterThan(1);
  });
});
