import { initBackend, packageFile, loadModel, loadProcessor, loadImage, generate } from 'glm46v';

await initBackend();                                   // native TensorFlow > wasm > cpu (GLM46V_BACKEND overrides)
const dir = packageFile('assets', 'model');            // the built-in model; or a folder such as GLM-4.6V-Flash's
const model = loadModel(dir);                          // config.json + *.safetensors (sharded or not)
const processor = loadProcessor(dir);
const image = loadImage(packageFile('assets', 'examples', 'count.png'));
const prompt = processor.applyChatTemplate(
  [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'How many shapes are there?' }] }],
  { addGenerationPrompt: true });
const inputs = processor.modelInputs({ text: [prompt], images: [image] });  // ids, mask, pixel values as tensors
const out = await generate(model, inputs, { maxNewTokens: 128 });
console.log(processor.postProcessImageTextToText(out.map((r) => r.slice(inputs.inputIds[0]!.length)))[0]);
