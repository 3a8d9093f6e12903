import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { loadModel } from '../../../models/glm4v/auto';
import { Glm46VForConditionalGeneration, Glm4vForConditionalGeneration } from '../../../models/glm4v/model';
import { referenceInputs } from '../../../cli/parity_runner';
import { mmTokenTypeIds } from '../../../models/glm4v/placeholders';
import { fixturePath, loadReference } from '../../helpers/fixtures';
import { expectReferenceParity } from '../../helpers/parity_runner';

const CASES = ['tiny_a_image', 'tiny_a_two_images', 'tiny_a_batch', 'tiny_b_image'];

describe('Glm4vForConditionalGeneration parity (rope, every visual and decoder stage, logits, loss, every gradient)', () => {
  for (const name of CASES) {
    it(name, async () => {
      const results = await expectReferenceParity(fixturePath('model', `${name}.safetensors`));
      const names = results.map((r) => r.name);
      expect(names).to.include.members(['rope:position_ids', 'logits', 'loss', 'out:model.visual.merger', 'out:model.language_model.norm']);
      expect(names.filter((n) => n.startsWith('grad:')).length).to.be.greaterThan(40);
    });
  }
});

describe('Glm4vForConditionalGeneration', () => {
  const ref = loadReference(fixturePath('model', 'tiny_a_image.safetensors'));
  let model: Glm4vForConditionalGeneration;
  before(() => {
    model = loadModel(ref.modelDir);
  });
  after(() => model.dispose());

  it('loads glm46v checkpoints as Glm46VForConditionalGeneration', () => {
    const m = loadModel(fixturePath('models', 'tiny_b'));
    expect(m).to.be.instanceOf(Glm46VForConditionalGeneration);
    expect(m.config.text_config.rope_parameters.rope_theta).to.equal(500000);
    m.dispose();
  });

  it('says how many image tokens and features there are when they disagree', () => {
    const inputs = referenceInputs(ref.tensors);
    const ids = (inputs.inputIds as number[][]).map((r) => [...r]);
    const at = ids[0]!.indexOf(model.config.image_token_id);
    ids[0]![at] = 5; // one placeholder fewer than the 12 features of the [1, 6, 8] image
    expect(() => model.forward({ ...inputs, inputIds: ids })).to.throw('Image features and image tokens do not match, tokens: 11, features: 12');
    inputs.pixelValues!.dispose();
  });

  it("takes the processor's mm_token_type_ids: they decide which tokens receive image features", () => {
    const inputs = referenceInputs(ref.tensors);
    const ids = inputs.inputIds as number[][];
    const types = ids.map((row) => Array.from(mmTokenTypeIds(row, model.config)));
    const own = model.forward({ ...inputs, labels: undefined, logitsToKeep: 1 });
    const given = model.forward({ ...inputs, labels: undefined, logitsToKeep: 1, mmTokenTypeIds: types });
    expect(given.positionIds).to.deep.equal(own.positionIds);
    expect(tf.max(tf.abs(tf.sub(given.logits, own.logits))).dataSync()[0]).to.equal(0);
    const oneLess = types.map((r) => [...r]);
    oneLess[0]![oneLess[0]!.indexOf(1)] = 0; // the processor says one placeholder is text
    expect(() => model.forward({ ...inputs, mmTokenTypeIds: oneLess })).to.throw('Image features and image tokens do not match, tokens: 11, features: 12');
    tf.dispose([own.logits, given.logits, inputs.pixelValues!]);
  });

  it('rejects labels whose shape differs from the input ids', () => {
    const inputs = referenceInputs(ref.tensors);
    const labels = inputs.labels!.map((r) => r.slice(1));
    expect(() => model.forward({ ...inputs, labels })).to.throw(/labels shape \[1, 29\] differs from the input ids \[1, 30\]/);
    inputs.pixelValues!.dispose();
  });

  it('keeps only the last logits with logitsToKeep', () => {
    const inputs = referenceInputs(ref.tensors);
    const all = model.forward({ ...inputs, labels: undefined });
    const last = model.forward({ ...inputs, labels: undefined, logitsToKeep: 1 });
    const L = all.logits.shape[1];
    expect(last.logits.shape).to.deep.equal([1, 1, all.logits.shape[2]]);
    const row = (i: number) => tf.slice(all.logits, [0, i, 0], [1, 1, -1]);
    const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
    // lm_head on 1 row and on 30 rows may run different GEMM kernels (oneDNN's GEMV for one row), whose sums round
    // differently: 1e-5 is float32 rounding for these logits (|x| < 10), while a wrong row is off by order one.
    const [tail, before] = [row(L - 1), row(L - 2)];
    expect(maxDiff(tail, last.logits)).to.be.at.most(1e-5);
    expect(maxDiff(before, last.logits)).to.be.greaterThan(1e-2);
    tf.dispose([all.logits, last.logits, tail, before, inputs.pixelValues!]);
  });

  it('does not leak tensors across 20 forward-and-backward passes', () => {
    const inputs = referenceInputs(ref.tensors);
    const vars = [...model.namedParameters().values()];
    const step = () => {
      const { value, grads } = tf.variableGrads(() => model.forward(inputs).loss!, vars);
      tf.dispose([value, ...Object.values(grads)]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 20; i++) step();
    expect(tf.memory().numTensors).to.equal(before);
    inputs.pixelValues!.dispose();
  });
});
