// The tiny model on videos, against transformers (spec/fixtures/video/model_*.safetensors from
// scripts/parity/cases_video.py; their inputs are the processor's outputs on the committed clips): rope positions
// exactly, every visual and decoder stage and the logits within 1e-4, greedy generation exactly. And a prompt with
// an image and a video, which the reference itself refuses, against a reference assembled from its pieces.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { referenceInputs } from '../../../cli/parity_runner';
import { loadModel } from '../../../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../../../models/glm4v/model';
import { mmTokenTypeIds, VIDEO } from '../../../models/glm4v/placeholders';
import { getRopeIndex } from '../../../models/glm4v/rope_index';
import { expectClose } from '../../helpers/expect_close';
import { fixturePath, loadReference } from '../../helpers/fixtures';
import { expectReferenceParity } from '../../helpers/parity_runner';

const VISUAL_STAGES = ['patch_embed', 'post_conv_layernorm', 'embeddings', 'blocks.0', 'blocks.1', 'post_layernorm', 'downsample', 'merger']
  .map((s) => `out:model.visual.${s}`);

describe('Glm4vForConditionalGeneration on videos: parity with transformers', () => {
  for (const [name, what] of [['model_video', 'one video (14 frames, 28x56)'], ['model_video_batch', 'a left-padded batch of two videos of different lengths']]) {
    it(`${name}: ${what}: rope, every stage, logits, greedy sequences`, async () => {
      const results = await expectReferenceParity(fixturePath('video', `${name}.safetensors`));
      const names = results.map((r) => r.name);
      expect(names).to.include.members(['rope:position_ids', 'rope:deltas', 'logits', 'gen:sequences', 'out:model.language_model.norm', ...VISUAL_STAGES]);
    });
  }

  it('model_mixed: an image then a video in one prompt (beyond the reference): rope, stages, logits', async () => {
    const results = await expectReferenceParity(fixturePath('video', 'model_mixed.safetensors'));
    expect(results.map((r) => r.name)).to.include.members(['rope:position_ids', 'logits', ...VISUAL_STAGES]);
  });
});

describe('Glm4vForConditionalGeneration on an image and a video in one prompt', () => {
  const ref = loadReference(fixturePath('video', 'model_mixed.safetensors'));
  const alone = loadReference(fixturePath('video', 'model_mixed_features.safetensors'));
  let model: Glm4vForConditionalGeneration;
  const ropeCfg = () => ({
    image_token_id: model.config.image_token_id,
    video_start_token_id: model.config.video_start_token_id,
    video_end_token_id: model.config.video_end_token_id,
    spatialMergeSize: model.config.vision_config.spatial_merge_size,
  });
  before(() => {
    model = loadModel(ref.modelDir);
  });
  after(() => model.dispose());

  it("scatters the image's features and the video's features, each as computed alone", () => {
    const inputs = referenceInputs(ref.tensors);
    const image = model.model.getImageFeatures(inputs.pixelValues!, inputs.imageGridThw!);
    const video = model.model.getVideoFeatures(inputs.pixelValuesVideos!, inputs.videoGridThw!);
    const ri = expectClose(image.dataSync(), alone.get('aux:image_features').data, { atol: 1e-4, label: 'image features' });
    const rv = expectClose(video.dataSync(), alone.get('aux:video_features').data, { atol: 1e-4, label: 'video features' });
    console.log(`      image features ${JSON.stringify(image.shape)} max diff ${ri.maxAbs.toExponential(2)}, video ${JSON.stringify(video.shape)} ${rv.maxAbs.toExponential(2)}`);
    // The forward's input embeddings: image rows at the image placeholders, video rows at the frames' placeholders.
    const ids = inputs.inputIds as number[][];
    const types = mmTokenTypeIds(ids[0]!, ropeCfg());
    let seen: tf.Tensor | undefined;
    const lm = model.model.languageModel;
    const original = lm.forward;
    lm.forward = ((args: Parameters<typeof original>[0]) => {
      seen = tf.keep(tf.clone(args.inputsEmbeds!));
      return original.call(lm, args);
    }) as typeof original;
    try {
      tf.dispose(model.forward(inputs).logits);
    } finally {
      lm.forward = original;
    }
    const embeds = seen!.squeeze([0]) as tf.Tensor2D; // [L, D]
    const pick = (t: number) => tf.gather(embeds, tf.tensor1d(Array.from(types.keys()).filter((i) => types[i] === t), 'int32'));
    const [atImage, atVideo] = [pick(1), pick(VIDEO)];
    expect(atImage.shape[0]).to.equal(image.shape[0]);
    expect(atVideo.shape[0]).to.equal(video.shape[0]);
    expect(tf.max(tf.abs(tf.sub(atImage, image))).dataSync()[0]).to.equal(0);
    expect(tf.max(tf.abs(tf.sub(atVideo, video))).dataSync()[0]).to.equal(0);
    tf.dispose([image, video, seen!, embeds, atImage, atVideo, inputs.pixelValues!, inputs.pixelValuesVideos!]);
  });

  it('gives the image and then every video frame the reference rule in order: st, st + row, st + col', () => {
    const inputs = referenceInputs(ref.tensors);
    const ids = inputs.inputIds as number[][];
    const m = model.config.vision_config.spatial_merge_size;
    const { positionIds } = getRopeIndex(ids, inputs.attentionMask as number[][], inputs.imageGridThw!, inputs.videoGridThw!, ropeCfg());
    const types = mmTokenTypeIds(ids[0]!, ropeCfg());
    // walk the groups: each vision run starts at 1 + the previous position maximum and spans its merged grid
    const grids = [...inputs.imageGridThw!, ...inputs.videoGridThw!.flatMap(([t, h, w]) => Array.from({ length: t! }, () => [1, h!, w!]))];
    let g = 0, i = 0, prevMax = -1;
    while (i < types.length) {
      if (types[i] === 0) {
        expect([0, 1, 2].map((a) => positionIds[a]![0]![i]), `text at ${i}`).to.deep.equal([prevMax + 1, prevMax + 1, prevMax + 1]);
        prevMax += 1;
        i++;
        continue;
      }
      const [, h, w] = grids[g++]!;
      const st = prevMax + 1;
      for (let r = 0; r < h! / m; r++) {
        for (let c = 0; c < w! / m; c++, i++) {
          expect([0, 1, 2].map((a) => positionIds[a]![0]![i]), `group ${g} (${r}, ${c})`).to.deep.equal([st, st + r, st + c]);
        }
      }
      prevMax = st + Math.max(h!, w!) / m - 1;
    }
    expect(g).to.equal(grids.length);
    expect(positionIds.flat(2)).to.deep.equal(Array.from(ref.get('rope:position_ids').data));
    tf.dispose([inputs.pixelValues!, inputs.pixelValuesVideos!]);
  });

  it('says how many video tokens and features there are when they disagree', () => {
    const inputs = referenceInputs(ref.tensors);
    const ids = (inputs.inputIds as number[][]).map((r) => [...r]);
    const types = mmTokenTypeIds(ids[0]!, ropeCfg());
    ids[0]![types.indexOf(VIDEO)] = 5;
    expect(() => model.forward({ ...inputs, inputIds: ids })).to.throw(/Video features and video tokens do not match, tokens: 13, features: 14/);
    tf.dispose([inputs.pixelValues!, inputs.pixelValuesVideos!]);
  });

  it('does not leak tensors across repeated image+video forwards', () => {
    const inputs = referenceInputs(ref.tensors);
    const step = () => tf.dispose(model.forward(inputs).logits);
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([inputs.pixelValues!, inputs.pixelValuesVideos!]);
  });
});
