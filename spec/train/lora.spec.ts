import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { Linear } from '../../layers/linear';
import { AdamW, paramGroups } from '../../train/adamw';
import { applyLora, LoRALinear, loraParameters, mergeLora, setLoraTraining } from '../../train/lora';
import { trainStep } from '../../train/step';
import { referenceInputs } from '../../cli/parity_runner';
import { loadModel } from '../../models/glm4v/auto';
import type { CausalLmInputs, Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { expectCloseAsync } from '../helpers/expect_close';
import { fixturePath, loadReference } from '../helpers/fixtures';

const TINY_A = fixturePath('models', 'tiny_a');
const TARGETS = ['q_proj', 'v_proj', 'gate_up_proj'];

describe('LoRA (applyLora / LoRALinear / mergeLora) on tiny_a', () => {
  let inputs: CausalLmInputs;
  before(() => {
    inputs = referenceInputs(loadReference(fixturePath('model', 'tiny_a_batch.safetensors')).tensors);
  });
  after(() => inputs.pixelValues!.dispose());

  const logits = async (m: Glm4vForConditionalGeneration) => {
    const out = m.forward({ ...inputs, labels: undefined });
    const v = (await out.logits.data()).slice();
    out.logits.dispose();
    return v;
  };

  it('swaps exactly the targeted Linears, keeps the base keys, and starts equal to the base model', async () => {
    const base = loadModel(TINY_A);
    const baseKeys = [...base.namedParameters().keys()];
    const expected = await logits(base);
    const adapted = applyLora(base, { targets: TARGETS, rank: 4, alpha: 8, seed: 1 });
    expect(adapted).to.have.length(6);
    expect(adapted).to.include('model.language_model.layers.1.mlp.gate_up_proj');
    const layer = base.model.languageModel.layers.items[0]!;
    expect(layer.selfAttn.qProj).to.be.instanceOf(LoRALinear);
    expect(layer.selfAttn.kProj).to.not.be.instanceOf(LoRALinear);
    const keys = [...base.namedParameters().keys()];
    expect(keys.filter((k) => !k.includes('.lora_'))).to.deep.equal(baseKeys);
    expect([...loraParameters(base).keys()]).to.include.members([
      'model.language_model.layers.0.self_attn.q_proj.lora_A.weight',
      'model.language_model.layers.0.self_attn.q_proj.lora_B.weight',
    ]);
    expect(loraParameters(base).get('model.language_model.layers.0.self_attn.v_proj.lora_A.weight')!.shape).to.deep.equal([4, 64]);
    expect(loraParameters(base).get('model.language_model.layers.0.self_attn.v_proj.lora_B.weight')!.shape).to.deep.equal([32, 4]);
    const a = await logits(base);
    expect(Array.from(a)).to.deep.equal(Array.from(expected)); // B = 0: exactly the base model
    base.dispose();
  });

  it('after 3 training steps only adapters changed, and the merged model gives the unmerged logits within 1e-5', async () => {
    const model = loadModel(TINY_A);
    const before = new Map<string, Float32Array | Int32Array | Uint8Array>();
    for (const [k, v] of model.namedParameters()) before.set(k, (await v.data()).slice());
    applyLora(model, { targets: TARGETS, rank: 4, alpha: 16, dropout: 0.1, seed: 2 });
    const trainable = loraParameters(model);
    const opt = new AdamW(trainable, paramGroups(trainable, 0.01), { lr: 2e-2 });
    for (let s = 0; s < 3; s++) {
      const { loss, gradNorm } = trainStep(model, [inputs], trainable, opt, { maxGradNorm: 1, beforeMicroBatch: (i) => setLoraTraining(model, true, s * 10 + i) });
      tf.dispose([loss, gradNorm]);
    }
    setLoraTraining(model, false);
    opt.dispose();
    for (const [k, v] of model.namedParameters()) {
      if (k.includes('.lora_')) continue;
      expect(Array.from(await v.data()), `${k} must not change`).to.deep.equal(Array.from(before.get(k)!));
    }
    const B = trainable.get('model.language_model.layers.0.self_attn.q_proj.lora_B.weight')!;
    const maxB = tf.tidy(() => tf.max(tf.abs(B)));
    expect((await maxB.data())[0]).to.be.greaterThan(1e-3);
    maxB.dispose();
    const unmerged = await logits(model);
    const b = loadModel(TINY_A);
    const baseLogits = await logits(b);
    b.dispose();
    let moved = 0;
    for (let i = 0; i < unmerged.length; i++) moved = Math.max(moved, Math.abs(unmerged[i]! - baseLogits[i]!));
    expect(moved).to.be.greaterThan(1e-2);
    const merged = mergeLora(model);
    expect(merged).to.have.length(6);
    expect(model.model.languageModel.layers.items[0]!.selfAttn.qProj).to.not.be.instanceOf(LoRALinear);
    expect([...model.namedParameters().keys()]).to.deep.equal([...before.keys()]);
    const d = await expectCloseAsync(await logits(model), unmerged, { atol: 1e-5, label: 'merged vs unmerged logits' });
    console.log(`      merged vs unmerged logits: max diff ${d.maxAbs.toExponential(2)} (training moved them by ${moved.toFixed(3)})`);
    model.dispose();
  });

  it('names a target that matches nothing, with the Linear names the model has', () => {
    const model = loadModel(TINY_A);
    expect(() => applyLora(model, { targets: ['w_q'], rank: 2, alpha: 2 })).to.throw(/target 'w_q' matches no Linear layer \(the model's Linear names: .*q_proj/);
    expect(() => applyLora(model, { targets: ['q_proj'], rank: 0, alpha: 2 })).to.throw('LoRA rank must be a positive integer, got 0');
    model.dispose();
  });

  it('fuse(): the plain Linear computes what the adapted one does', async () => {
    const base = new Linear(6, 5, { bias: true }).initWeights({ std: 0.5, seed: 3 });
    const lora = LoRALinear.fromBase(base, { rank: 2, alpha: 4, seed: 5 });
    const b = tf.randomNormal([5, 2], 0, 1, 'float32', 9);
    lora.loraB.weight.set(b);
    const x = tf.randomNormal([3, 4, 6], 0, 1, 'float32', 7);
    const fused = lora.fuse();
    const [y1, y2] = [lora.forward(x), fused.forward(x)];
    await expectCloseAsync(y2, y1, { atol: 1e-6, label: 'fused' });
    tf.dispose([b, x, y1, y2]);
    lora.dispose();
    fused.dispose();
  });

  it('does not leak tensors across training steps with adapters', () => {
    const model = loadModel(TINY_A);
    applyLora(model, { targets: ['q_proj', 'v_proj'], rank: 2, alpha: 4, dropout: 0.2 });
    const trainable = loraParameters(model);
    const opt = new AdamW(trainable, paramGroups(trainable, 0.01), { lr: 1e-3 });
    const run = (s: number) => {
      const out = trainStep(model, [inputs], trainable, opt, { maxGradNorm: 1, beforeMicroBatch: () => setLoraTraining(model, true, s) });
      tf.dispose([out.loss, out.gradNorm]);
    };
    run(0);
    const n = tf.memory().numTensors;
    for (let s = 1; s < 6; s++) run(s);
    expect(tf.memory().numTensors).to.equal(n);
    opt.dispose();
    model.dispose();
  });
});
