// Loading the text decoder from a HF checkpoint folder: keys verbatim, and errors that name the offending key.
// Broken checkpoints are copies of the tiny_a fixture with one key removed, reshaped or added.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader, WeightLoadError } from '../../lib/checkpoint';
import { HostTensor, readAllSafetensors, writeSafetensors, WriteTensor } from '../../lib/safetensors';
import { Glm4vTextModel } from '../../models/glm4v/text';
import { isIgnoredKey } from '../../models/glm4v/weights';
import { fixturePath } from '../helpers/fixtures';

const SOURCE = fixturePath('models', 'tiny_a');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-ckpt-'));

const asWrite = (t: HostTensor): WriteTensor => ({ dtype: t.dtype === 'float32' ? 'F32' : t.dtype === 'int32' ? 'I32' : 'BOOL', shape: t.shape, data: t.data });

/** A copy of tiny_a (config.json + model.safetensors) whose tensors went through `edit`. */
function brokenCopy(name: string, edit: (tensors: Map<string, HostTensor>) => void): string {
  const dir = path.join(tmpRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(SOURCE, 'config.json'), path.join(dir, 'config.json'));
  const { tensors, metadata } = readAllSafetensors(path.join(SOURCE, 'model.safetensors'));
  edit(tensors);
  writeSafetensors(path.join(dir, 'model.safetensors'), [...tensors].map(([k, t]) => [k, asWrite(t)]), metadata);
  return dir;
}

function loadError(dir: string): string {
  try {
    Glm4vTextModel.fromPretrained(dir).dispose();
  } catch (e) {
    expect(e).to.be.instanceOf(WeightLoadError);
    return (e as Error).message;
  }
  throw new Error(`${dir} loaded without an error`);
}

describe('Glm4vTextModel.fromPretrained', () => {
  after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

  it('registers exactly the model.language_model.* keys of the checkpoint, with their values', () => {
    const model = Glm4vTextModel.fromPretrained(SOURCE);
    const reader = new CheckpointReader(SOURCE);
    const prefix = 'model.language_model.';
    const keys = reader.keys().filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length)).sort();
    expect([...model.namedParameters().keys()].sort()).to.deep.equal(keys);
    const w = model.namedParameters().get('layers.1.self_attn.k_proj.bias')!;
    expect(Array.from(w.dataSync())).to.deep.equal(Array.from(reader.read(`${prefix}layers.1.self_attn.k_proj.bias`).data));
    reader.close();
    model.dispose();
  });

  it('names a missing weight by its checkpoint key', () => {
    const dir = brokenCopy('missing', (t) => t.delete('model.language_model.layers.1.mlp.down_proj.weight'));
    expect(loadError(dir)).to.match(/Missing parameters \(1\): model\.language_model\.layers\.1\.mlp\.down_proj\.weight/);
  });

  it('names a wrong-shaped weight with the expected and the found shape', () => {
    const dir = brokenCopy('shape', (t) => {
      const k = t.get('model.language_model.layers.0.self_attn.k_proj.weight')!;
      t.set('model.language_model.layers.0.self_attn.k_proj.weight', { ...k, shape: [64, 32] });
    });
    expect(loadError(dir)).to.match(/Wrong shapes \(1\): model\.language_model\.layers\.0\.self_attn\.k_proj\.weight: expected \[32,64\], got \[64,32\]/);
  });

  it('names an unexpected key under the prefix, but skips the rotary inv_freq buffer by rule', () => {
    const extra = { dtype: 'float32' as const, shape: [4], data: new Float32Array([1, 0.1, 0.01, 0.001]) };
    const dir = brokenCopy('unexpected', (t) => t.set('model.language_model.layers.0.self_attn.o_proj.bias', { ...extra, shape: [4] }));
    expect(loadError(dir)).to.match(/Received parameters not in model \(1\): model\.language_model\.layers\.0\.self_attn\.o_proj\.bias/);
    const ok = brokenCopy('inv_freq', (t) => t.set('model.language_model.rotary_emb.inv_freq', extra));
    const before = tf.memory().numTensors;
    const model = Glm4vTextModel.fromPretrained(ok);
    expect(model.namedParameters().size).to.equal(2 + 2 * 13); // embed, norm; per layer 4 norms, q/k/v weight+bias, o, gate_up, down
    model.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });
});

describe('isIgnoredKey', () => {
  it('skips only the non-persistent rotary buffers, on full and prefix-stripped keys', () => {
    for (const k of ['model.language_model.rotary_emb.inv_freq', 'rotary_emb.inv_freq', 'rotary_emb.original_inv_freq', 'model.visual.rotary_pos_emb.inv_freq']) {
      expect(isIgnoredKey(k), k).to.equal(true);
    }
    for (const k of ['model.language_model.norm.weight', 'rotary_emb.inv_freq_extra', 'model.language_model.layers.0.self_attn.q_proj.weight', 'lm_head.weight']) {
      expect(isIgnoredKey(k), k).to.equal(false);
    }
  });
});
