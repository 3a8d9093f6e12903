// Every committed reference file that names a model, through `runParity` (the code behind `glm46v parity`):
// text decoder, full model with gradients, greedy generation, video. Reads tensors asynchronously only, so the
// same suite runs on webgpu (CI runs it there too: GLM46V_BACKEND=webgpu).
import * as fs from 'fs';
import { fixturePath } from './helpers/fixtures';
import { expectReferenceParity } from './helpers/parity_runner';

const FILES = [
  ...['text', 'model'].flatMap((dir) => fs.readdirSync(fixturePath(dir)).filter((f) => f.endsWith('.safetensors')).map((f) => `${dir}/${f}`)),
  ...fs.readdirSync(fixturePath('video')).filter((f) => /^model_(video|video_batch|mixed)\.safetensors$/.test(f)).map((f) => `video/${f}`),
];

describe('reference suite: every reference file passes within atol 1e-4', () => {
  for (const file of FILES) {
    it(file, async () => {
      await expectReferenceParity(fixturePath(...file.split('/')));
    });
  }
});
