import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { fixturePath } from '../helpers/fixtures';

const BIN = path.join(__dirname, '..', '..', 'bin', 'glm46v.js');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'generate', ...args], { encoding: 'utf8', env: { ...process.env, GLM46V_BACKEND: tf.getBackend() } });

describe('glm46v generate', () => {
  it('streams an answer with the built-in model and ends with the timing line', () => {
    const r = run('--image', path.join(__dirname, '..', '..', 'assets', 'examples', 'shapes.png'), '--prompt', 'What colour is the circle?', '--max-new-tokens', '4');
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr.trim().split('\n').pop()).to.match(/^tokens=[1-4] prefill_ms=\d+ decode_tok_s=[\d.]+$/);
  });

  it("the built-in model answers each of the README's example questions (assets/examples/examples.json)", () => {
    const dir = path.join(__dirname, '..', '..', 'assets', 'examples');
    const examples = JSON.parse(fs.readFileSync(path.join(dir, 'examples.json'), 'utf8')) as { image: string; question: string; answer: string }[];
    expect(examples).to.have.length(3);
    for (const ex of examples) {
      const r = run('--image', path.join(dir, ex.image), '--prompt', ex.question, '--max-new-tokens', '8');
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout.trim(), `${ex.image}: ${ex.question}`).to.equal(ex.answer);
    }
  });

  it('runs a given checkpoint folder', () => {
    const r = run('--model', fixturePath('models', 'tiny_a'), '--image', fixturePath('images', 'photo.jpg'), '--prompt', 'Describe it.', '--max-new-tokens', '3', '--temperature', '0.7', '--seed', '1');
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/tokens=3 prefill_ms=\d+/);
  });

  it('accepts the edges of each range: --temperature 0 (greedy), --top-p 1, --top-k 0 (both off), the largest --seed', () => {
    const args = ['--model', fixturePath('models', 'tiny_a'), '--prompt', 'Describe it.', '--max-new-tokens', '1', '--temperature', '0'];
    const greedy = run(...args);
    const edges = run(...args, '--top-p', '1', '--top-k', '0', '--seed', '4294967295');
    expect(greedy.status, greedy.stderr).to.equal(0);
    expect(edges.status, edges.stderr).to.equal(0);
    expect(edges.stderr).to.match(/tokens=1 prefill_ms=\d+/);
    expect(edges.stdout).to.equal(greedy.stdout);
  });

  for (const [what, args, message] of [
    ['a missing image file', ['--image', 'no-such.png', '--prompt', 'x'], /^glm46v generate: image file no-such.png does not exist$/],
    ['an unreadable model folder', ['--model', '/nonexistent-model', '--prompt', 'x'], /^glm46v generate: model folder \/nonexistent-model is not readable: no config.json$/],
    ['an empty prompt', ['--prompt', '  '], /^glm46v generate: --prompt is required and must not be empty/],
  ] as const) {
    it(`gives a one-line error and a non-zero exit for ${what}`, () => {
      const r = run(...args);
      expect(r.status).to.not.equal(0);
      expect(r.stderr.trim().split('\n')).to.have.length(1);
      expect(r.stderr.trim()).to.match(message);
      expect(r.stdout).to.equal('');
    });
  }
});

describe('glm46v generate --video', () => {
  it('answers about a folder of frames with the tiny model', () => {
    const r = run('--model', fixturePath('models', 'tiny_a'), '--video', fixturePath('video', 'clip_a'), '--prompt', 'What happens?', '--max-new-tokens', '2');
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.match(/tokens=2 prefill_ms=\d+/);
  });

  it('names a missing video before loading the model', () => {
    const r = run('--video', 'no-such-clip', '--prompt', 'x');
    expect(r.status).to.not.equal(0);
    expect(r.stderr.trim()).to.equal('glm46v generate: video no-such-clip does not exist');
  });
});
