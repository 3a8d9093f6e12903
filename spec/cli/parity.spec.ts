import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { fixturePath } from '../helpers/fixtures';

const BIN = path.join(__dirname, '..', '..', 'bin', 'glm46v.js');
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, GLM46V_BACKEND: tf.getBackend() } });

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

describe('glm46v inspect', () => {
  it('lists the weights of a checkpoint', () => {
    const r = run('inspect', '--model', fixturePath('models', 'tiny_a'));
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.include('model.visual.patch_embed.proj.weight');
    expect(r.stdout.trim().split('\n').pop()).to.match(/^inspect: \d+ tensors, 199648 parameters$/);
  });
});
