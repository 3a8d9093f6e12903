import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { generate, generateTokens } from '../../generation/generate';
import { argmax } from '../../generation/sampling';
import { streamGenerate } from '../../generation/streaming';
import { loadProcessor } from '../../processors/processor';
import { referenceInputs } from '../../cli/parity_runner';
import { loadModel } from '../../models/glm4v/auto';
import type { CausalLmInputs, Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { fixturePath, loadReference } from '../helpers/fixtures';
import { expectReferenceParity } from '../helpers/parity_runner';

describe('generate: greedy gen:sequences equal the reference exactly', () => {
  for (const name of ['gen_text', 'gen_image', 'gen_batch', 'gen_image_tiny_b']) {
    it(name, async () => {
      await expectReferenceParity(fixturePath('model', `${name}.safetensors`));
    });
  }
});

/** Greedy decoding without a cache: the whole sequence through the model at every step. */
function greedyNoCache(model: Glm4vForConditionalGeneration, inputs: CausalLmInputs, n: number): number[] {
  const prompt = inputs.inputIds as number[][];
  const seq = [...prompt[0]!];
  const first = model.forward({ ...inputs, logitsToKeep: 1 });
  const pos = first.positionIds.map((axis) => [...axis[0]!]);
  let next = argmax(first.logits.dataSync());
  first.logits.dispose();
  for (let k = 0; k < n; k++) {
    seq.push(next);
    const p = Math.max(...pos.flat()) + 1;
    pos.forEach((axis) => axis.push(p));
    if (k + 1 === n) break;
    const out = model.forward({ ...inputs, inputIds: [seq], attentionMask: [seq.map(() => 1)], positionIds: pos.map((a) => [a]), logitsToKeep: 1 });
    next = argmax(out.logits.dataSync());
    out.logits.dispose();
  }
  return seq;
}

describe('generate', () => {
  const ref = loadReference(fixturePath('model', 'gen_image.safetensors'));
  let model: Glm4vForConditionalGeneration;
  let inputs: CausalLmInputs;
  before(() => {
    model = loadModel(ref.modelDir);
    inputs = referenceInputs(ref.tensors);
  });
  after(() => {
    inputs.pixelValues?.dispose();
    model.dispose();
  });

  it('decoding with the cache equals decoding without it, token for token, for 32 tokens', async () => {
    // tiny_b's image prompt: its greedy answer holds no image placeholder, so re-running the prompt stays valid
    const r = loadReference(fixturePath('model', 'gen_image_tiny_b.safetensors'));
    const m = loadModel(r.modelDir);
    const x = referenceInputs(r.tensors);
    const cached = await generate(m, x, { maxNewTokens: 32, eosTokenId: [-1] });
    const uncached = greedyNoCache(m, x, 32);
    x.pixelValues!.dispose();
    m.dispose();
    expect(cached[0]!.length).to.equal(uncached.length);
    expect(cached[0]).to.deep.equal(uncached);
  });

  it('streams one token per row per step and stops at maxNewTokens', async () => {
    const steps: number[][] = [];
    for await (const s of generateTokens(model, inputs, { maxNewTokens: 5, eosTokenId: [-1] })) steps.push(s);
    expect(steps.length).to.equal(5);
    expect(steps.every((s) => s.length === 1)).to.equal(true);
  });

  it('stops when a stop id is produced', async () => {
    const full = await generate(model, inputs, { maxNewTokens: 8, eosTokenId: [-1] });
    const L = (inputs.inputIds as number[][])[0]!.length;
    const stopAt = full[0]![L + 2]!;
    const stopped = await generate(model, inputs, { maxNewTokens: 8, eosTokenId: [stopAt] });
    expect(stopped[0]).to.deep.equal(full[0]!.slice(0, L + full[0]!.slice(L).indexOf(stopAt) + 1));
  });

  it('samples reproducibly with a seed', async () => {
    const opts = { maxNewTokens: 12, temperature: 0.9, topK: 50, topP: 0.95, seed: 3, eosTokenId: [-1] };
    const a = await generate(model, inputs, opts);
    const b = await generate(model, inputs, opts);
    const c = await generate(model, inputs, { ...opts, seed: 4 });
    expect(a).to.deep.equal(b);
    expect(a).to.not.deep.equal(c);
  });

  it('leaves tf.memory().numTensors unchanged across 50 generate calls', async () => {
    await generate(model, inputs, { maxNewTokens: 3 });
    const before = tf.memory().numTensors;
    for (let i = 0; i < 50; i++) await generate(model, inputs, { maxNewTokens: 3 });
    expect(tf.memory().numTensors).to.equal(before);
  });
});

describe('streamGenerate', () => {
  it('yields tokens and their text, and the model method returns the same sequences', async () => {
    const ref = loadReference(fixturePath('model', 'gen_text.safetensors'));
    const model = loadModel(ref.modelDir);
    const processor = loadProcessor(ref.modelDir);
    const inputs = referenceInputs(ref.tensors);
    const decode = (ids: number[]) => processor.decode(ids, { skipSpecialTokens: true });
    const tokens: number[] = [];
    let text = '';
    for await (const step of streamGenerate(model, inputs, decode, { maxNewTokens: 32 })) {
      tokens.push(step.tokens[0]!);
      text += step.text[0];
    }
    const seq = await generate(model, inputs, { maxNewTokens: 32 });
    const expected = Array.from(ref.get('gen:sequences').data);
    expect([...(inputs.inputIds as number[][])[0]!, ...tokens]).to.deep.equal(expected);
    expect(seq[0]).to.deep.equal(expected);
    const L = (inputs.inputIds as number[][])[0]!.length;
    expect(text).to.equal(decode(expected.slice(L)));
    model.dispose();
  });
});
