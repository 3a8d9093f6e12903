// The README's TypeScript example, run through the public entry point on a tiny checkpoint.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { generate, loadImage, loadModel, loadProcessor } from '../index';
import { fixturePath } from './helpers/fixtures';

describe('public entry point', () => {
  it('runs the README example end to end', async () => {
    const dir = fixturePath('models', 'tiny_a');
    const model = loadModel(dir);
    const processor = loadProcessor(dir);
    const image = loadImage(fixturePath('images', 'photo.jpg'));
    const prompt = processor.applyChatTemplate(
      [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is in the picture?' }] }],
      { addGenerationPrompt: true });
    const enc = processor.call({ text: [prompt], images: [image] });
    const pixelValues = tf.tensor2d(enc.pixelValues!, enc.pixelValuesShape as [number, number]);
    const out = await generate(model, {
      inputIds: enc.inputIds, attentionMask: enc.attentionMask, pixelValues, imageGridThw: enc.imageGridThw!,
    }, { maxNewTokens: 5, eosTokenId: [-1] });
    const text = processor.postProcessImageTextToText(out.map((r) => r.slice(enc.inputIds[0]!.length)));
    expect(out[0]!.length).to.equal(enc.inputIds[0]!.length + 5);
    expect(text).to.have.length(1);
    pixelValues.dispose();
    model.dispose();
  });
});
