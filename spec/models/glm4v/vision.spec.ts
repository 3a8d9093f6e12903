import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { captureOutputs } from '../../../lib/capture';
import { CheckpointReader, loadWeights } from '../../../lib/checkpoint';
import { readJson } from '../../../lib/config';
import { parseGlm4vConfig, parseGlm4vVisionConfig } from '../../../models/glm4v/config';
import { flattenGridThw } from '../../../models/glm4v/rope_index';
import { Glm4vVisionModel, Glm4vVisionRotaryEmbedding } from '../../../models/glm4v/vision';
import type { HostTensor } from '../../../lib/safetensors';
import { diff, expectClose } from '../../helpers/expect_close';
import { fixturePath, loadReference } from '../../helpers/fixtures';

/** The pixel values of scripts/parity/cases_vision.py (PIXEL_FORMULA): exact in float32, so not stored. */
function pixelValues(rows: number, width: number): tf.Tensor2D {
  const v = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) v[r * width + c] = (((r * 131 + c * 29 + ((c * c) % 97)) % 251) - 125) / 64;
  return tf.tensor2d(v, [rows, width]);
}

function gridRows(t: HostTensor): number[][] {
  return Array.from({ length: t.shape[0]! }, (_, i) => Array.from(t.data.slice(i * 3, i * 3 + 3)));
}

function loadVision(modelName: string): Glm4vVisionModel {
  const dir = fixturePath('models', modelName);
  const model = new Glm4vVisionModel(parseGlm4vConfig(readJson(`${dir}/config.json`)).vision_config);
  loadWeights(model, new CheckpointReader(dir), { prefix: 'model.visual.', ignore: (k) => k.startsWith('rotary_pos_emb.') });
  return model;
}

const STAGES = (depth: number) => ['patch_embed', 'post_conv_layernorm', 'embeddings',
  ...Array.from({ length: depth }, (_, i) => `blocks.${i}`), 'post_layernorm', 'downsample', 'merger'];
const CASES = ['image_8x12', 'two_images', 'video'];

for (const modelName of ['tiny_a', 'tiny_b']) {
  describe(`Glm4vVisionModel parity (${modelName})`, () => {
    let model: Glm4vVisionModel;
    before(() => (model = loadVision(modelName)));
    after(() => model.dispose());

    for (const name of CASES) {
      it(`matches every stage of model.visual within 1e-4: ${name}`, () => {
        const ref = loadReference(fixturePath('vision', `${modelName}_${name}.safetensors`));
        const video = ref.tensors.has('in:video_grid_thw');
        const grid = video ? flattenGridThw(gridRows(ref.get('in:video_grid_thw'))) : gridRows(ref.get('in:image_grid_thw'));
        const c = model.config;
        const n = grid.reduce((a, [t, h, w]) => a + t! * h! * w!, 0);
        const px = pixelValues(n, c.in_channels * c.temporal_patch_size * c.patch_size ** 2);
        const sums = tf.sum(px, -1);
        expectClose(sums, ref.get('aux:pixel_values_row_sums'), { atol: 1e-3, label: 'pixel formula' });
        const stages = STAGES(c.depth);
        const { result, outputs } = captureOutputs(model, stages, () => model.forward(px, grid));
        const diffs: string[] = [];
        for (const s of stages) {
          const want = ref.get(`out:model.visual.${s}`);
          // HF's downsample is a Conv2d: [N/4, out, 1, 1]; ours is the same conv as a linear: [N/4, out]
          const got = s === 'downsample' ? outputs.get(s)!.reshape(want.shape) : outputs.get(s)!;
          const d = expectClose(got, want, { atol: 1e-4, label: `${modelName} ${name} ${s}` });
          if (got !== outputs.get(s)) got.dispose();
          diffs.push(`${s} ${d.maxAbs.toExponential(1)}`);
        }
        expect(result.shape).to.deep.equal(ref.get('out:model.visual.merger').shape);
        if (process.env.GLM46V_SPEC_VERBOSE) console.log(`      ${modelName} ${name} max abs diff: ${diffs.join(', ')}`);
        tf.dispose([px, sums, result, ...outputs.values()]);
      });
    }

    it('treats a [t, h, w] grid as t temporal slices [1, h, w] (as get_video_features flattens video grids)', () => {
      const c = model.config;
      const px = pixelValues(2 * 36, c.in_channels * c.temporal_patch_size * c.patch_size ** 2);
      const [a, b] = [model.forward(px, [[2, 6, 6]]), model.forward(px, [[1, 6, 6], [1, 6, 6]])];
      expect(diff(a.dataSync(), b.dataSync(), 0, 0).maxAbs).to.equal(0);
      // and the slices do not see each other: the first slice alone gives the same first rows
      const first = tf.tidy(() => model.forward(tf.slice(px, [0, 0], [36, -1]), [[1, 6, 6]]));
      const head = tf.slice(a, [0, 0], [9, -1]);
      expectClose(head, first, { atol: 1e-6, label: 'slice 0 alone' });
      tf.dispose([px, a, b, first, head]);
    });
  });
}

describe('Glm4vVisionModel (tiny_a) resources and gradients', () => {
  let model: Glm4vVisionModel;
  before(() => (model = loadVision('tiny_a')));
  after(() => model.dispose());
  const grid = [[1, 4, 4], [1, 6, 4]];
  const px = () => pixelValues(40, 3 * 2 * 14 * 14);

  it('does not grow tf.memory().numTensors across repeated forwards', () => {
    const x = px();
    model.forward(x, grid).dispose(); // warm-up
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) model.forward(x, grid).dispose();
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
  });

  it('rejects pixel values and grids that do not fit, naming the shapes', () => {
    const x = px();
    expect(() => model.forward(x, [[1, 4, 4]])).to.throw(/40 rows but gridThw \[\[1,4,4\]\] covers 16 patches/);
    expect(() => model.forward(x, [[1, 5, 8]])).to.throw(/\[1,5,8\] is not divisible by the merge size 2/);
    const bad = tf.zeros([40, 10]) as tf.Tensor2D;
    expect(() => model.forward(bad, grid)).to.throw(/\[40,10\] need 3\*2\*14\*14 = 1176 columns/);
    tf.dispose([x, bad]);
  });

  it('tf.variableGrads through the tower gives finite, nonzero gradients for every vision parameter', () => {
    const x = px();
    const params = model.namedParameters();
    const cot = tf.randomNormal([10, model.config.out_hidden_size], 0, 1, 'float32', 1);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(model.forward(x, grid), cot)) as tf.Scalar, [...params.values()]);
    expect(Object.keys(grads).length).to.equal(params.size);
    for (const [key, v] of params) {
      const g = grads[v.name]!;
      expect(g, key).to.not.equal(undefined);
      const d = g.dataSync();
      expect(d.every(Number.isFinite), `${key} finite`).to.equal(true);
      expect(d.some((e) => e !== 0), `${key} nonzero`).to.equal(true);
    }
    tf.dispose([x, cot, value, ...Object.values(grads)]);
  });
});

describe('Glm4vVisionRotaryEmbedding', () => {
  const vision = (extra: object) => parseGlm4vVisionConfig({ hidden_size: 32, num_heads: 2, ...extra });

  it('reads rope_parameters.rope_theta (default 10000, rope_type axial) and rejects other rope types', () => {
    expect(vision({}).rope_parameters).to.deep.equal({ rope_type: 'axial', rope_theta: 10000 });
    expect(vision({ rope_parameters: { rope_type: 'axial', rope_theta: 500 } }).rope_parameters.rope_theta).to.equal(500);
    expect(() => vision({ rope_parameters: { rope_type: 'yarn', rope_theta: 500 } })).to.throw(/vision_config.rope_parameters.rope_type: only 'axial'/);
  });

  it('uses Dh/4 frequencies 1/theta^(2j/(Dh/2)) laid out [f(h) | f(w) | f(h) | f(w)] (hand-worked, Dh 16)', () => {
    const rot = new Glm4vVisionRotaryEmbedding(vision({}));
    expect(Array.from(rot.invFreq)).to.deep.equal([1, 0.1, 0.01, 0.001].map(Math.fround));
    const [cos, sin] = rot.forward(Int32Array.from([0, 2]), Int32Array.from([0, 3]));
    const f = Array.from(rot.invFreq);
    const angles = [...f.map((x) => Math.fround(2 * x)), ...f.map((x) => Math.fround(3 * x))];
    expectClose(cos, [...Array(16).fill(0), ...angles, ...angles].map(Math.cos), { atol: 1e-7, label: 'cos' });
    expectClose(sin, [...Array(16).fill(0), ...angles, ...angles].map(Math.sin), { atol: 1e-7, label: 'sin' });
    tf.dispose([cos, sin]);
  });
});
