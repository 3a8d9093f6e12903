// glm46v serve driven by the official openai client: models, plain and image chats, streaming, sampling
// parameters, and one log line per request. Model answers are the README's (assets/examples/examples.json).
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { loadProcessor } from '../../processors/processor';
import { BUILTIN, EXAMPLES, Running, imageQuestion, startServer, until } from './helpers';

describe('glm46v serve: chat completions with the openai client', () => {
  let s: Running;
  before(async () => {
    s = await startServer();
  });
  after(async () => s.stop());

  it('lists its one model and answers /health', async () => {
    const models = await s.client.models.list();
    expect(models.data.map((m) => m.id)).to.deep.equal(['glm46v']);
    const health = await fetch(`${s.url}/health`);
    expect(health.status).to.equal(200);
    expect(await health.json()).to.deep.equal({ status: 'ok' });
  });

  it("answers each README example question about its image, sent as a data URL", async () => {
    for (const ex of EXAMPLES) {
      const r = await s.client.chat.completions.create({ model: 'glm46v', messages: imageQuestion(ex) });
      expect(r.choices[0]!.message.content, ex.question).to.equal(ex.answer);
      expect(r.choices[0]!.finish_reason).to.equal('stop');
      expect(r.object).to.equal('chat.completion');
    }
  });

  it('counts prompt tokens as the processor does and completion tokens with the stop token', async () => {
    const ex = EXAMPLES.find((e) => e.image === 'count.png')!;
    const r = await s.client.chat.completions.create({ model: 'glm46v', messages: imageQuestion(ex) });
    const proc = loadProcessor(BUILTIN);
    // 112x112 image -> 16 image tokens, expanded from the one placeholder of the rendered prompt
    const prompt = proc.applyChatTemplate([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: ex.question }] }], { addGenerationPrompt: true });
    const textTokens = proc.tokenizer.encode(prompt).length;
    expect(r.usage).to.deep.equal({ prompt_tokens: textTokens - 1 + 16, completion_tokens: 2, total_tokens: textTokens - 1 + 16 + 2 });
  });

  it('streams the same answer as chunks, with the role first and finish_reason last, then usage', async () => {
    const ex = EXAMPLES.find((e) => e.image === 'shapes.png')!;
    const stream = await s.client.chat.completions.create({ model: 'glm46v', messages: imageQuestion(ex), stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0]!.choices[0]!.delta.role).to.equal('assistant');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).to.equal(ex.answer);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish.map((c) => c.choices[0]!.finish_reason)).to.deep.equal(['stop']);
    expect(chunks[chunks.length - 1]!.choices).to.deep.equal([]);
    expect(chunks[chunks.length - 1]!.usage!.completion_tokens).to.be.greaterThan(0);
    expect(new Set(chunks.map((c) => c.id)).size).to.equal(1);
  });

  it('ends a raw SSE stream with data: [DONE]', async () => {
    const res = await fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'glm46v', stream: true, messages: [{ role: 'user', content: 'Hello' }], max_tokens: 3 }),
    });
    expect(res.headers.get('content-type')).to.equal('text/event-stream');
    const text = await res.text();
    expect(text.endsWith('data: [DONE]\n\n')).to.equal(true);
    for (const block of text.trim().split('\n\n')) expect(block.startsWith('data: ')).to.equal(true);
  });

  it('stops at max_tokens / max_completion_tokens with finish_reason length', async () => {
    const ex = EXAMPLES.find((e) => e.image === 'shapes.png')!; // "red" and then the stop token: two tokens
    for (const limit of [{ max_tokens: 1 }, { max_completion_tokens: 1 }]) {
      const r = await s.client.chat.completions.create({ model: 'glm46v', messages: imageQuestion(ex), ...limit });
      expect(r.usage!.completion_tokens).to.equal(1);
      expect(r.choices[0]!.finish_reason).to.equal('length');
      expect(ex.answer.startsWith(r.choices[0]!.message.content!)).to.equal(true);
    }
  });

  it('samples reproducibly with a seed and differently across seeds', async () => {
    const ask = (seed: number) => s.client.chat.completions.create({
      model: 'glm46v', messages: [{ role: 'user', content: 'Name some shapes.' }], temperature: 1.5, top_p: 0.99, seed, max_tokens: 12,
    }).then((r) => r.choices[0]!.message.content);
    const a = await ask(1);
    expect(await ask(1)).to.equal(a);
    const others = await Promise.all([2, 3, 4, 5].map(ask));
    expect(others.some((o) => o !== a)).to.equal(true);
  });

  it('logs one line per request with status, tokens and time', async () => {
    const before = s.logs.length;
    await s.client.chat.completions.create({ model: 'glm46v', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2 });
    await until(() => s.logs.length === before + 1);
    expect(s.logs[before]).to.match(/^POST \/v1\/chat\/completions 200 prompt_tokens=\d+ completion_tokens=[12] ms=\d+/);
  });

  it('leaves no tensors behind once the requests are done', async () => {
    const n = tf.memory().numTensors;
    await Promise.all(EXAMPLES.map((ex) => s.client.chat.completions.create({ model: 'glm46v', messages: imageQuestion(ex) })));
    await s.server.scheduler.idle();
    expect(tf.memory().numTensors).to.equal(n);
  });
});
