// The README's TypeScript example, run through the public entry point on a tiny checkpoint.
import { expect } from 'chai';
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
    const inputs = processor.modelInputs({ text: [prompt], images: [image] });
    const out = await generate(model, inputs, { maxNewTokens: 5, eosTokenId: [-1] });
    const text = processor.postProcessImageTextToText(out.map((r) => r.slice(inputs.inputIds[0]!.length)));
    expect(out[0]!.length).to.equal(inputs.inputIds[0]!.length + 5);
    expect(text).to.have.length(1);
    inputs.pixelValues!.dispose();
    model.dispose();
  });
});
