import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CliError } from '../../cli/args';
import { command } from '../../cli/parity';
import { fixturePath } from '../helpers/fixtures';

const BIN = path.join(__dirname, '..', '..', 'bin', 'glm46v.js');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, GLM46V_BACKEND: tf.getBackend() } });

/** A copy of a reference file with its header's `__metadata__` replaced (the tensor bytes are kept as they are). */
function withMetadata(src: string, metadata: Record<string, string>): string {
  const buf = fs.readFileSync(src);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const json = Buffer.from(JSON.stringify({ ...header, __metadata__: metadata }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'parity-')), path.basename(src));
  fs.writeFileSync(file, Buffer.concat([len, json, buf.subarray(8 + n)]));
  return file;
}

describe('glm46v parity', () => {
  for (const name of ['tiny_a_batch', 'tiny_b_image', 'gen_batch']) {
    it(`passes on spec/fixtures/model/${name}.safetensors, finding the model from the file's metadata`, () => {
      const r = run('parity', '--reference', fixturePath('model', `${name}.safetensors`));
      expect(r.status, r.stdout + r.stderr).to.equal(0);
      const last = r.stdout.trim().split('\n').pop()!;
      const m = /^parity: (\d+)\/(\d+) tensors within atol=0.0001 rtol=0; worst \S+ max_abs_diff=\S+$/.exec(last);
      expect(m, last).to.not.equal(null);
      expect(m![1]).to.equal(m![2]);
    });
  }

  it('fails with a non-zero exit when the tolerance is too tight', () => {
    const r = run('parity', '--reference', fixturePath('model', 'tiny_a_image.safetensors'), '--atol', '1e-9');
    expect(r.status).to.equal(1);
    expect(r.stdout).to.match(/FAIL/);
    expect(r.stdout.trim().split('\n').pop()).to.match(/^parity: \d+\/71 tensors within atol=1e-9 rtol=0; worst/);
  });
});

/** Runs `glm46v parity` in this process; resolves to the CliError it throws (main.ts prints it as 'glm46v parity: MESSAGE', exit 1). */
async function refusal(...argv: string[]): Promise<string> {
  let err: unknown;
  await command.run(argv).catch((e: unknown) => (err = e));
  expect(err).to.be.instanceOf(CliError);
  return (err as CliError).message;
}

describe('glm46v parity on a reference file of another kind', () => {
  const WANTS = 'glm46v parity compares model outputs (out:*, logits, loss, grad:*, gen:sequences) computed from in:input_ids';
  const ROPE = `a rope-index reference (in:* and rope:* tensors only): ${WANTS}; its checks run in spec/models/glm4v/rope_index.spec.ts`;
  const IMAGE_PROCESSOR = `an image-processor reference (proc:* tensors without proc:input_ids): ${WANTS}; its checks run in spec/processors/`;

  // the two cases, run as a user runs them
  for (const [file, what] of [[fixturePath('rope', 'one_image.safetensors'), ROPE], [fixturePath('image_processor', 'small_batch.safetensors'), IMAGE_PROCESSOR]] as const) {
    it(`names the kind of ${path.relative(fixturePath(), file)} and what it needs, exit 1`, () => {
      const r = run('parity', '--reference', file);
      expect(r.stderr).to.equal(`glm46v parity: ${file} is ${what}\n`);
      expect(r.status).to.equal(1);
      expect(r.stdout).to.equal('');
    });
  }

  for (const [file, what] of [
    [fixturePath('rope', 'text_only.safetensors'), ROPE],
    [fixturePath('image_processor', 'resize.safetensors'), IMAGE_PROCESSOR],
    [fixturePath('processor', 'chat_batch.safetensors'), `a processor reference (proc:* tensors with proc:input_ids): ${WANTS}; its checks run in spec/processors/`],
    [fixturePath('video', 'proc_clip_a.safetensors'), `a processor reference (proc:* tensors with proc:input_ids): ${WANTS}; its checks run in spec/processors/`],
    [fixturePath('vision', 'tiny_a_image_8x12.safetensors'), `a vision-tower reference (out:model.visual.* without in:input_ids): ${WANTS}; its checks run in spec/models/glm4v/vision.spec.ts`],
    [fixturePath('train', 'adamw_tiny_a.safetensors'), `an optimizer reference (tensors param:*, sched:*, step1:*, train:*): ${WANTS}; its checks run in spec/train/adamw.spec.ts`],
  ] as const) {
    it(`names the kind of ${path.relative(fixturePath(), file)} and what it needs`, async () => {
      expect(await refusal('--reference', file)).to.equal(`${file} is ${what}`);
    });
  }

  it('says a file of no known kind is not a model reference, naming its tensors', async () => {
    const file = fixturePath('video', 'model_mixed_features.safetensors');
    expect(await refusal('--reference', file)).to.equal(`${file} is not a model reference (tensors aux:*): ${WANTS}`);
  });
});

describe('glm46v parity: finding the model', () => {
  it('a model reference without a `model` metadata entry asks for --model, exit 1; with --model it runs', () => {
    const file = withMetadata(fixturePath('model', 'tiny_a_batch.safetensors'), { model_type: 'glm4v' });
    const r = run('parity', '--reference', file);
    expect(r.stderr).to.equal(`glm46v parity: ${file} names no model in its metadata: pass --model DIR\n`);
    expect(r.status).to.equal(1);
    const ok = run('parity', '--reference', file, '--model', fixturePath('models', 'tiny_a'));
    expect(ok.status, ok.stderr).to.equal(0);
    expect(ok.stdout.trim().split('\n').pop()).to.match(/^parity: (\d+)\/\1 tensors within/);
  });

  it('a `model` metadata entry naming a folder without config.json says so and asks for --model', async () => {
    const file = withMetadata(fixturePath('model', 'tiny_a_batch.safetensors'), { model_type: 'glm4v', model: 'no-such-model' });
    expect(await refusal('--reference', file)).to.equal(`${file} names the model folder ${path.join(path.dirname(file), 'no-such-model')} in its metadata, which has no config.json: pass --model DIR`);
  });

  it('a missing reference file or --model folder is named', async () => {
    expect(await refusal('--reference', '/nonexistent/ref.safetensors')).to.equal('--reference /nonexistent/ref.safetensors does not exist');
    expect(await refusal('--reference', fixturePath('model', 'tiny_a_batch.safetensors'), '--model', '/nonexistent-model')).to.equal('--model /nonexistent-model is not readable: no config.json');
  });
});

describe('glm46v inspect', () => {
  it('lists the weights of a checkpoint', () => {
    const r = run('inspect', '--model', fixturePath('models', 'tiny_a'));
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.include('model.visual.patch_embed.proj.weight');
    expect(r.stdout.trim().split('\n').pop()).to.match(/^inspect: \d+ tensors, 199648 parameters$/);
  });
});
