// Load: 32 concurrent streaming openai clients on the built-in model, each asking one of the README's example
// questions. All must get the README's answer; afterwards the tensor count is back where it was and RSS within
// 64 MiB. Prints p50/p95 latency and total tokens/s (the figures of docs/serving.md).
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { EXAMPLES, Running, imageQuestion, startServer } from './helpers';

const CLIENTS = 32;
const RSS_SLACK = 64 * 2 ** 20;

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

describe('glm46v serve under load', () => {
  let s: Running;
  before(async () => {
    s = await startServer();
  });
  after(async () => s.stop());

  async function client(i: number): Promise<{ ms: number; firstMs: number; tokens: number; answer: string; expected: string }> {
    const ex = EXAMPLES[i % EXAMPLES.length]!;
    const t0 = performance.now();
    let firstMs = 0;
    let answer = '';
    let tokens = 0;
    const stream = await s.client.chat.completions.create({ model: 'glm46v', messages: imageQuestion(ex), stream: true, stream_options: { include_usage: true } });
    for await (const c of stream) {
      const d = c.choices[0]?.delta.content;
      if (d && !firstMs) firstMs = performance.now() - t0;
      answer += d ?? '';
      if (c.usage) tokens = c.usage.completion_tokens;
    }
    return { ms: performance.now() - t0, firstMs, tokens, answer, expected: ex.answer };
  }

  it(`${CLIENTS} concurrent streaming clients all get the right answer, and memory comes back`, async () => {
    await Promise.all(EXAMPLES.map((_, i) => client(i))); // warm-up: kernels compiled, buffers allocated
    await s.server.scheduler.idle();
    const tensors = tf.memory().numTensors;
    const rss = process.memoryUsage().rss;
    const admittedBefore = s.server.scheduler.admissions.length;
    s.server.scheduler.peakRows = 0;

    const t0 = performance.now();
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
    const wall = performance.now() - t0;
    await s.server.scheduler.idle();

    for (const r of results) expect(r.answer).to.equal(r.expected);
    expect(tf.memory().numTensors).to.equal(tensors);
    const grown = process.memoryUsage().rss - rss;
    expect(grown, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).to.be.lessThan(RSS_SLACK);

    const ms = results.map((r) => r.ms);
    const tokens = results.reduce((n, r) => n + r.tokens, 0);
    const admissions = s.server.scheduler.admissions.slice(admittedBefore);
    console.log(`      load (${tf.getBackend()}): ${CLIENTS} clients, ${admissions.length} prefills [${admissions.join(', ')}], at most ${s.server.scheduler.peakRows} rows at once, p50 ${percentile(ms, 50).toFixed(0)} ms, `
      + `p95 ${percentile(ms, 95).toFixed(0)} ms, first token p50 ${percentile(results.map((r) => r.firstMs), 50).toFixed(0)} ms, `
      + `${tokens} tokens in ${wall.toFixed(0)} ms = ${(tokens / (wall / 1000)).toFixed(1)} tok/s, `
      + `tensors ${tensors} -> ${tf.memory().numTensors}, RSS ${(rss / 2 ** 20).toFixed(0)} -> ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
  });
});
