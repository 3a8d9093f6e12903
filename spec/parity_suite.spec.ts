// Every committed reference file that names a model, through `runParity` (the code behind `glm46v parity`):
// text decoder, full model with gradients, greedy generation, video. Reads tensors asynchronously only, so the
// same suite runs on webgpu (CI runs it there too: GLM46V_BACKEND=webgpu).
import * as fs from 'fs';
import { setScoreBlockBytesForTests } from '../layers/ops/query_blocks';
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

// The same files with a prefill's causal attention run 3 query rows at a time, each block over the keys up to its last
// query (layers/ops/query_blocks.ts; a long prompt takes that path at 256 rows): the same tolerance.
describe('reference suite with causal attention in blocks of 3 query rows', () => {
  before(() => setScoreBlockBytesForTests(undefined, 3));
  after(() => setScoreBlockBytesForTests(undefined));
  for (const file of FILES) {
    it(file, async () => {
      await expectReferenceParity(fixturePath(...file.split('/')));
    });
  }
});
