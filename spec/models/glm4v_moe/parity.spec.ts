// Every MoE reference file (spec/fixtures/moe/, made by scripts/parity/cases_moe.py) through the runner behind
// `glm46v parity`: rope, every visual and decoder stage, the router logits and expert outputs, logits, loss, every
// gradient, and greedy generation, at the dense model's tolerances.
import { expect } from 'chai';
import * as fs from 'fs';
import { fixturePath } from '../../helpers/fixtures';
import { expectReferenceParity } from '../../helpers/parity_runner';

const FILES = fs.readdirSync(fixturePath('moe')).filter((f) => f.endsWith('.safetensors')).sort();

describe('glm4v_moe parity (spec/fixtures/moe)', () => {
  it('has the forward and generation cases', () => {
    expect(FILES).to.include.members(['moe_a_text.safetensors', 'moe_a_image.safetensors', 'moe_a_two_images.safetensors', 'moe_a_batch.safetensors', 'moe_a_video.safetensors', 'moe_b_image.safetensors', 'moe_a_gen_text.safetensors', 'moe_a_gen_batch.safetensors']);
  });
  for (const file of FILES) {
    it(file, async () => {
      const results = await expectReferenceParity(fixturePath('moe', file));
      const names = results.map((r) => r.name);
      if (file.includes('_gen_')) expect(names).to.deep.equal(['gen:sequences']);
      else {
        expect(names).to.include.members(['rope:position_ids', 'logits', 'loss', 'out:model.language_model.layers.1']);
        expect(names.some((n) => /^grad:.*\.mlp\.experts\.\d+\.down_proj\.weight$/.test(n))).to.equal(true);
        expect(names).to.include('grad:model.language_model.layers.1.mlp.gate.weight');
      }
    });
  }
});
