// Glm4vTextModel against transformers 5.24 (scripts/parity/cases_text.py), stage by stage, plus cache and memory checks.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { captureOutputs } from '../../../lib/capture';
import { CheckpointReader } from '../../../lib/checkpoint';
import { TextCache } from '../../../lib/kv_cache';
import { HostTensor } from '../../../lib/safetensors';
import { Glm4vTextModel, TextModelInputs } from '../../../models/glm4v/text';
import { expectClose } from '../../helpers/expect_close';
import { fixturePath, loadReference, Reference } from '../../helpers/fixtures';

const PREFIX = 'model.language_model.';
const host = (h: HostTensor) => tf.tensor(h.data, h.shape, h.dtype);

/** The reference's inputs as tensors (owned by the caller). */
function referenceInputs(ref: Reference): Required<Pick<TextModelInputs, 'inputIds' | 'positionIds' | 'attentionMask'>> {
  return {
    inputIds: host(ref.get('in:input_ids')) as tf.Tensor2D,
    positionIds: host(ref.get('in:position_ids')) as tf.Tensor3D,
    attentionMask: host(ref.get('in:attention_mask')) as tf.Tensor2D,
  };
}

const disposeAll = (o: object) => Object.values(o).forEach((t) => t instanceof tf.Tensor && t.dispose());

/** Real (attention-mask 1) positions of a [B, L, D] tensor as a flat list, for comparisons that skip padding. */
function realRows(x: ArrayLike<number>, mask: HostTensor, D: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) for (let d = 0; d < D; d++) out.push(x[i * D + d]!);
  return out;
}

for (const name of ['tiny_a', 'tiny_b']) {
  describe(`Glm4vTextModel parity (${name})`, () => {
    const ref = loadReference(fixturePath('text', `${name}_batch.safetensors`));
    let model: Glm4vTextModel;

    before(() => {
      model = Glm4vTextModel.fromPretrained(ref.modelDir);
    });
    after(() => model.dispose());

    // Padding rows are compared too: the reference runs eager attention, where a row with no visible key averages
    // all keys (score + finfo.min rounds to finfo.min); our mask uses the same finfo.min, so they are defined alike.
    it('matches every decoder layer, the final norm and the logits on all positions (atol 1e-4)', () => {
      const inputs = referenceInputs(ref);
      const paths = ['embed_tokens', ...model.layers.items.map((_, i) => `layers.${i}`), 'norm'];
      const { result, outputs } = captureOutputs(model, paths, () => model.forward(inputs));
      const worst: string[] = [];
      for (const p of paths) {
        const d = expectClose(outputs.get(p)!, ref.get(`out:${PREFIX}${p}`), { atol: 1e-4, label: `${name} ${p}` });
        worst.push(`${p} ${d.maxAbs.toExponential(2)}`);
      }
      expectClose(result, ref.get(`out:${PREFIX}norm`), { atol: 1e-4, label: `${name} last hidden state` });
      // logits through the checkpoint's lm_head: checks the whole chain on the quantity generation uses
      const reader = new CheckpointReader(ref.modelDir);
      const lmHead = reader.tensor('lm_head.weight');
      reader.close();
      const [B, L, D] = result.shape;
      const logits = tf.tidy(() => tf.reshape(tf.matMul(tf.reshape(result, [B * L, D]), lmHead, false, true), [B, L, -1]));
      const dl = expectClose(logits, ref.get('logits'), { atol: 1e-4, label: `${name} logits` });
      worst.push(`logits ${dl.maxAbs.toExponential(2)}`);
      console.log(`      ${name} max abs diff: ${worst.join(', ')}`);
      [result, logits, lmHead, ...outputs.values()].forEach((t) => t.dispose());
      disposeAll(inputs);
    });

    it('gives the same result from inputsEmbeds as from inputIds', () => {
      const inputs = referenceInputs(ref);
      const a = model.forward(inputs);
      const embeds = model.embedTokens.forward(inputs.inputIds) as tf.Tensor3D;
      const b = model.forward({ inputsEmbeds: embeds, positionIds: inputs.positionIds, attentionMask: inputs.attentionMask });
      expectClose(b, a, { atol: 0, label: 'inputsEmbeds path' });
      [a, b, embeds].forEach((t) => t.dispose());
      disposeAll(inputs);
    });

    // Only real positions are compared: a padding query sees no key, so eager attention averages every key it has,
    // which is all L keys in the full forward but only the cached ones when decoding token by token.
    it('decodes incrementally with the KV cache (prefill 4, then 1 token at a time) as the full forward (1e-5)', () => {
      const inputs = referenceInputs(ref);
      const full = model.forward(inputs);
      const [B, L, D] = full.shape;
      const cache = new TextCache(model.config.num_hidden_layers);
      const steps: tf.Tensor[] = [];
      const k = 4;
      for (let s = 0; s < L; s = s === 0 ? k : s + 1) {
        const n = s === 0 ? k : 1;
        const step = tf.tidy(() => model.forward({
          inputIds: tf.slice(inputs.inputIds, [0, s], [B, n]),
          positionIds: tf.slice(inputs.positionIds, [0, 0, s], [3, B, n]),
          attentionMask: tf.slice(inputs.attentionMask, [0, 0], [B, s + n]),
          cache,
        }));
        steps.push(step);
        expect(cache.offset).to.equal(s + n);
      }
      const cached = tf.concat(steps, 1);
      const mask = ref.get('in:attention_mask');
      const d = expectClose(realRows(cached.dataSync(), mask, D), realRows(full.dataSync(), mask, D), { atol: 1e-5, label: `${name} cached decode` });
      console.log(`      ${name} cached vs full max abs diff ${d.maxAbs.toExponential(2)}`);
      [full, cached, ...steps].forEach((t) => t.dispose());
      cache.dispose();
      disposeAll(inputs);
    });

    it('does not grow tf.memory().numTensors across 20 forwards and a cached decode', () => {
      const inputs = referenceInputs(ref);
      model.forward(inputs).dispose(); // warm-up
      const before = tf.memory().numTensors;
      for (let i = 0; i < 20; i++) model.forward(inputs).dispose();
      model.forward({ inputIds: inputs.inputIds }).dispose();
      expect(tf.memory().numTensors).to.equal(before);
      const cache = new TextCache(model.config.num_hidden_layers);
      const [B, L] = inputs.inputIds.shape;
      for (let s = 0; s < L; s++) {
        tf.tidy(() => model.forward({ inputIds: tf.slice(inputs.inputIds, [0, s], [B, 1]), cache })).dispose();
      }
      // the cache holds exactly its keys and values: 2 tensors per layer
      expect(tf.memory().numTensors).to.equal(before + 2 * model.config.num_hidden_layers);
      cache.dispose();
      expect(tf.memory().numTensors).to.equal(before);
      disposeAll(inputs);
    });
  });
}

describe('Glm4vTextModel inputs', () => {
  const ref = loadReference(fixturePath('text', 'tiny_a_batch.safetensors'));
  let model: Glm4vTextModel;
  before(() => {
    model = Glm4vTextModel.fromPretrained(ref.modelDir);
  });
  after(() => model.dispose());

  it('defaults positions to arange(past, past + L) on all three rows and the mask to all ones', () => {
    const ids = tf.tensor2d([[5, 17, 99, 3, 250]], undefined, 'int32');
    const pos = tf.tile(tf.reshape(tf.range(0, 5, 1, 'int32'), [1, 1, 5]), [3, 1, 1]) as tf.Tensor3D;
    const a = model.forward({ inputIds: ids });
    const b = model.forward({ inputIds: ids, positionIds: pos, attentionMask: tf.ones([1, 5], 'int32') });
    expectClose(a, b, { atol: 0, label: 'defaults' });
    [ids, pos, a, b].forEach((t) => t.dispose());
  });

  it('rejects inputs whose shapes do not fit, naming them', () => {
    const ids = tf.tensor2d([[1, 2, 3]], undefined, 'int32');
    const badPos = tf.zeros([4, 1, 3], 'int32') as tf.Tensor3D;
    const badMask = tf.ones([1, 2], 'int32') as tf.Tensor2D;
    expect(() => model.forward({ inputIds: ids, positionIds: badPos })).to.throw(/positionIds \[4,1,3\] is not \[3, 1, 3\]/);
    expect(() => model.forward({ inputIds: ids, attentionMask: badMask })).to.throw(/attentionMask \[1,2\] is not \[1, 3\]/);
    expect(() => model.forward({})).to.throw(/exactly one of inputIds and inputsEmbeds/);
    [ids, badPos, badMask].forEach((t) => t.dispose());
  });
});
