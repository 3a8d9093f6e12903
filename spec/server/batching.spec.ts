// Continuous batching in the server's scheduler, on the built-in model with greedy decoding: requests join the
// running batch at a step boundary and leave it when they end or their client goes away. A request's tokens are the
// same whether it ran alone or joined a batch (shorter or longer than the batch's cache, with an image), a dropped
// row's KV memory goes at the next step while the others go on unchanged, and short requests arriving behind a long
// generation finish within a few steps, in arrival order.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'path';
import { argmax } from '../../generation/sampling';
import { loadModel } from '../../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { Glm46VImageProcessor } from '../../processors/image_processor';
import { loadImage } from '../../processors/image_io';
import { Glm4vProcessor, loadProcessor } from '../../processors/processor';
import { EngineParts, FinishReason, Job, Scheduler } from '../../server/scheduler';
import { BUILTIN, EXAMPLES_DIR } from './helpers';

interface Run { job: Job; tokens: number[]; done: Promise<FinishReason> }

describe('glm46v serve: continuous batching', () => {
  let model: Glm4vForConditionalGeneration;
  let processor: Glm4vProcessor;
  let parts: EngineParts;
  before(() => {
    model = loadModel(BUILTIN);
    processor = loadProcessor(BUILTIN, Glm46VImageProcessor.fromPretrained(BUILTIN));
    // no stop ids: every row runs to its token budget, so lengths are under the spec's control
    parts = { model, decode: (ids) => processor.decode(ids), eosTokenIds: [], padTokenId: 0 };
  });
  after(() => model.dispose());

  /** A greedy job for a user turn (text, and an image of assets/examples if named), recording its tokens. */
  function run(text: string, maxTokens: number, image?: string): Run {
    const prompt = processor.applyChatTemplate([{ role: 'user', content: [...(image ? [{ type: 'image' }] : []), { type: 'text', text }] }], { addGenerationPrompt: true });
    const enc = processor.call({ text: [prompt], ...(image ? { images: [loadImage(path.join(EXAMPLES_DIR, image))] } : {}) });
    const tokens: number[] = [];
    let finish: (r: FinishReason) => void = () => {};
    const done = new Promise<FinishReason>((resolve) => (finish = resolve));
    const job: Job = {
      inputIds: enc.inputIds[0]!, maxTokens, stop: [], aborted: false,
      sampler: (logits) => {
        const t = argmax(logits);
        tokens.push(t);
        return t;
      },
      onText: () => {}, onDone: (r) => finish(r), onError: (e) => { throw e; },
    };
    if (enc.pixelValues) job.images = { data: enc.pixelValues, shape: enc.pixelValuesShape!, gridThw: enc.imageGridThw! };
    return { job, tokens, done };
  }

  /** The tokens of a job run alone on a fresh scheduler. */
  async function alone(r: Run): Promise<number[]> {
    const s = new Scheduler(parts, 8);
    s.submit(r.job);
    await r.done;
    return r.tokens;
  }

  const LONG = 'Describe every shape in the picture, its colour, its size and where it sits, one after the other. '.repeat(3);
  const make = {
    a: () => run('Tell me a story about squares.', 40),
    short: () => run('Hi', 20), // a prompt shorter than the running cache: the new row is left-padded
    long: () => run(LONG, 20), // longer: the running batch is left-padded
    image: () => run('How many shapes are there?', 20, 'count.png'),
  };

  it('gives a request the same greedy tokens alone and joined to a running batch, and the running rows too', async () => {
    const solo = {
      a: await alone(make.a()), short: await alone(make.short()), long: await alone(make.long()), image: await alone(make.image()),
    };
    const s = new Scheduler(parts, 8);
    const runs = { a: make.a(), short: make.short(), long: make.long(), image: make.image() };
    let steps = 0;
    const rowsAt: number[] = [];
    s.onStep = (rows) => {
      steps += 1;
      rowsAt.push(rows);
      if (steps === 5) s.submit(runs.short.job);
      if (steps === 8) s.submit(runs.long.job);
      if (steps === 11) s.submit(runs.image.job);
    };
    s.submit(runs.a.job);
    await Promise.all(Object.values(runs).map((r) => r.done));
    for (const k of ['a', 'short', 'long', 'image'] as const) expect(runs[k].tokens, k).to.deep.equal(solo[k]);
    expect(s.admissions).to.deep.equal([1, 1, 1, 1]); // each joined on its own, none waited for the batch to end
    expect(s.peakRows).to.equal(4);
    expect(rowsAt.slice(3, 13)).to.deep.equal([1, 1, 2, 2, 2, 3, 3, 3, 4, 4]);
  });

  it('drops a cancelled row at the next step: its KV memory goes, the other rows go on unchanged', async () => {
    const solo = { a: await alone(make.a()), image: await alone(make.image()) };
    const base = tf.memory().numTensors;
    const s = new Scheduler(parts, 8);
    const runs = { a: make.a(), long: run(LONG, 40), image: make.image() };
    const mem: { rows: number; bytes: number; tensors: number }[] = [];
    s.onStep = (rows) => {
      mem.push({ rows, bytes: tf.memory().numBytes, tensors: tf.memory().numTensors });
      if (mem.length === 6) s.cancel(runs.long.job);
    };
    for (const r of Object.values(runs)) s.submit(r.job);
    const reasons = await Promise.all(Object.values(runs).map((r) => r.done));
    expect(reasons).to.deep.equal(['length', 'abort', 'length']);
    expect(runs.a.tokens).to.deep.equal(solo.a);
    expect(runs.image.tokens).to.deep.equal(solo.image);
    expect(runs.long.tokens.length).to.equal(6); // one from its prefill, one after each decode step before the cancel
    // one cached position of one row, in bytes: layers * (k + v) * kv heads * head dim * 4
    const tc = model.config.text_config;
    const perPosition = tc.num_hidden_layers * 2 * tc.num_key_value_heads * (tc.hidden_size / tc.num_attention_heads) * 4;
    const longRow = perPosition * (runs.long.job.inputIds.length + 6); // its prompt and 6 tokens were cached
    const [before, after] = [mem[5]!, mem[6]!];
    expect([before.rows, after.rows]).to.deep.equal([3, 2]);
    expect(before.bytes - after.bytes, 'bytes freed at the step after the cancel').to.be.greaterThan(longRow);
    expect(after.tensors).to.be.at.most(before.tensors);
    await s.idle();
    expect(tf.memory().numTensors).to.equal(base);
  });

  it('finishes short requests that arrive behind a long generation within their own steps, in arrival order', async () => {
    const s = new Scheduler(parts, 8);
    const long = run(LONG, 120);
    const shorts = Array.from({ length: 5 }, (_, i) => run(`Question ${i}: what colour is the circle?`, 4));
    let steps = 0;
    const arrivedAt: number[] = [];
    const finishedAt: number[] = [];
    const order: number[] = [];
    s.onStep = () => {
      steps += 1;
      if (steps >= 10 && steps < 15) {
        arrivedAt.push(steps);
        s.submit(shorts[steps - 10]!.job);
      }
    };
    shorts.forEach((r, i) => void r.done.then(() => {
      order.push(i);
      finishedAt[i] = steps;
    }));
    s.submit(long.job);
    await Promise.all(shorts.map((r) => r.done));
    expect(long.tokens.length, 'the long generation is still running').to.be.lessThan(30);
    expect(order).to.deep.equal([0, 1, 2, 3, 4]);
    // 4 tokens: the first from its prefill, three more from the next three decode steps; no wait for the long one
    expect(finishedAt.map((f, i) => f - arrivedAt[i]!)).to.deep.equal([3, 3, 3, 3, 3]);
    await long.done;
  });
});
