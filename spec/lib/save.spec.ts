import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { CheckpointReader } from '../../lib/checkpoint';
import { saveCheckpoint } from '../../lib/save';
import { bf16ToF32, f32ToBf16 } from '../../lib/safetensors';
import { applyLora, loraParameters } from '../../train/lora';
import { loadModel } from '../../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { expectCloseAsync } from '../helpers/expect_close';
import { fixturePath } from '../helpers/fixtures';

const TINY_A = fixturePath('models', 'tiny_a');
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'save-'));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Every parameter's bytes, keyed by checkpoint key (Buffer comparison: chai's deep equal is slow on 200k numbers). */
async function values(m: Glm4vForConditionalGeneration): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [k, v] of m.namedParameters()) out[k] = bytes((await v.data()) as Float32Array).toString('base64');
  return out;
}
/** The error `p` rejects with. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('saveCheckpoint (Hugging Face layout)', () => {
  let model: Glm4vForConditionalGeneration;
  before(() => {
    model = loadModel(TINY_A);
  });
  after(() => model.dispose());

  it('F32, one file: reloads bit-identical, with config, tokenizer, template and processor files', async () => {
    const dir = path.join(tmpDir(), 'ckpt');
    await saveCheckpoint(model, dir, { copyFrom: TINY_A });
    expect(fs.readdirSync(dir).sort()).to.deep.equal([
      'chat_template.jinja', 'config.json', 'generation_config.json', 'model.safetensors', 'preprocessor_config.json',
      'tokenizer.json', 'tokenizer_config.json', 'video_preprocessor_config.json',
    ]);
    const reloaded = loadModel(dir);
    expect(await values(reloaded)).to.deep.equal(await values(model));
    reloaded.dispose();
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(cfg.dtype).to.equal('float32');
    expect(cfg.text_config).to.deep.equal(JSON.parse(fs.readFileSync(path.join(TINY_A, 'config.json'), 'utf8')).text_config);
    const reader = new CheckpointReader(dir);
    expect(reader.info('lm_head.weight').dtype).to.equal('F32');
    reader.close();
  });

  it('shards by size with model.safetensors.index.json (total_size, every key mapped)', async () => {
    const dir = path.join(tmpDir(), 'sharded');
    await saveCheckpoint(model, dir, { shardBytes: 200_000, copyFrom: TINY_A, files: ['tokenizer.json'] });
    const shards = fs.readdirSync(dir).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).to.be.greaterThan(2);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).to.equal(false);
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map)).to.have.members([...model.namedParameters().keys()]);
    expect(index.metadata.total_size).to.equal(model.numParameters() * 4);
    for (const s of shards) expect(fs.statSync(path.join(dir, s)).size).to.be.lessThan(200_000 + 40_000 + 4096);
    const reloaded = loadModel(dir);
    expect(await values(reloaded)).to.deep.equal(await values(model));
    reloaded.dispose();
  });

  it('BF16: every weight is the round-to-nearest-even bfloat16 of ours, and config.json says bfloat16', async () => {
    const dir = path.join(tmpDir(), 'bf16');
    await saveCheckpoint(model, dir, { dtype: 'BF16', copyFrom: TINY_A });
    const reader = new CheckpointReader(dir);
    for (const [k, v] of model.namedParameters()) {
      expect(reader.info(k).dtype).to.equal('BF16');
      expect(Array.from(reader.read(k).data)).to.deep.equal(Array.from(bf16ToF32(f32ToBf16((await v.data()) as Float32Array))));
    }
    reader.close();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).dtype).to.equal('bfloat16');
  });

  it('BF16, sharded: loadModel (one reused host buffer pair on wasm) gives every weight its own bf16 values', async () => {
    const dir = path.join(tmpDir(), 'bf16-sharded');
    await saveCheckpoint(model, dir, { dtype: 'BF16', copyFrom: TINY_A, shardBytes: 100_000 });
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).length).to.be.greaterThan(2);
    const loaded = loadModel(dir);
    const got = await values(loaded);
    for (const [k, v] of model.namedParameters()) {
      expect(got[k], k).to.equal(bytes(bf16ToF32(f32ToBf16((await v.data()) as Float32Array))).toString('base64'));
    }
    loaded.dispose();
  });

  it('saves LoRA merged under the base keys: the reloaded plain model computes what the adapted one does', async () => {
    const adapted = loadModel(TINY_A);
    applyLora(adapted, { targets: ['q_proj', 'v_proj'], rank: 2, alpha: 4 });
    for (const [k, v] of loraParameters(adapted)) if (k.endsWith('lora_B.weight')) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', 4)));
    const dir = path.join(tmpDir(), 'lora');
    await saveCheckpoint(adapted, dir, { copyFrom: TINY_A });
    const reader = new CheckpointReader(dir);
    expect(reader.keys().filter((k) => k.includes('lora'))).to.deep.equal([]);
    reader.close();
    const reloaded = loadModel(dir);
    const ids = [[352 + 2, 352 + 4, 352 + 7, 10, 20, 30, 40, 352 + 8, 50, 60]];
    const [a, b] = [adapted.forward({ inputIds: ids }).logits, reloaded.forward({ inputIds: ids }).logits];
    const d = await expectCloseAsync(b, a, { atol: 1e-5, label: 'reloaded merged vs adapted' });
    const base = model.forward({ inputIds: ids }).logits;
    const moved = tf.tidy(() => tf.max(tf.abs(tf.sub(base, a))));
    expect((await moved.data())[0]).to.be.greaterThan(1e-2);
    expect(d.maxAbs).to.be.lessThan(1e-5);
    tf.dispose([a, b, base, moved]);
    adapted.dispose();
    reloaded.dispose();
  });

  it('a failure while saving leaves the previous checkpoint intact and no temporary folder behind', async () => {
    const parent = tmpDir();
    const dir = path.join(parent, 'ckpt');
    await saveCheckpoint(model, dir, { copyFrom: TINY_A });
    const before = fs.readFileSync(path.join(dir, 'model.safetensors'));
    const broken = loadModel(TINY_A);
    broken.model.languageModel.norm.weight.dispose(); // reading it mid-save throws
    expect((await rejection(saveCheckpoint(broken, dir, { copyFrom: TINY_A, shardBytes: 100_000 }))).message).to.match(/model\.language_model\.norm\.weight|norm\.weight|not been loaded/);
    expect(fs.readdirSync(parent)).to.deep.equal(['ckpt']);
    expect(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(before)).to.equal(true);
    expect(fs.existsSync(path.join(dir, 'model.safetensors.index.json'))).to.equal(false);
    broken.dispose();
    expect((await rejection(saveCheckpoint(model, path.join(parent, 'x'), { copyFrom: TINY_A, files: ['nope.json'] }))).message).to.match(/nope\.json: not found/);
    expect(fs.readdirSync(parent)).to.deep.equal(['ckpt']);
  });

  it('reads one tensor at a time, each once, and leaves no tensor behind (nor, on webgpu, a host copy of a weight)', async () => {
    const m = loadModel(TINY_A);
    tf.tidy(() => {
      m.forward({ inputIds: [[352 + 2, 10, 20, 30]] }); // the weights now live on the device, as after training
    });
    // webgpu keeps a host copy on a tensor once read; weights on the device must not all end up copied to the host
    const onDevice = () => [...m.namedParameters()].filter(([, v]) => {
      try {
        v.dataSync();
        return false;
      } catch {
        return true;
      }
    }).map(([k]) => k);
    const deviceOnly = onDevice();
    const proto = tf.Tensor.prototype;
    const data = proto.data;
    let inFlight = 0, most = 0, reads = 0;
    proto.data = async function (this: tf.Tensor) {
      most = Math.max(most, ++inFlight);
      reads++;
      try {
        return await data.call(this);
      } finally {
        inFlight--;
      }
    } as typeof data;
    const before = tf.memory().numTensors;
    try {
      await saveCheckpoint(m, path.join(tmpDir(), 'ckpt'), { copyFrom: TINY_A, shardBytes: 100_000 });
    } finally {
      proto.data = data;
    }
    expect(tf.memory().numTensors).to.equal(before);
    expect([most, reads]).to.deep.equal([1, m.namedParameters().size]);
    expect(onDevice()).to.include.members(deviceOnly); // none of them gained a host copy
    if (tf.getBackend() === 'webgpu') expect(deviceOnly).to.include('lm_head.weight');
    m.dispose();
  });
});
