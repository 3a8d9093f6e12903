// `glm46v inspect` on MoE folders: the expert lines and the parameters active per token, from the config.
import { expect } from 'chai';
import * as path from 'path';
import { readGlm4vMoeConfig } from '../../../models/glm4v_moe/config';
import { expertCounts, inspectMoe } from '../../../models/glm4v_moe/inspect';
import { fixturePath } from '../../helpers/fixtures';

describe('inspectMoe', () => {
  it('counts the routed experts a token does not use (moe_a: 2 MoE layers x 6 unused experts x 3*16*48)', () => {
    expect(expertCounts(readGlm4vMoeConfig(fixturePath('models', 'moe_a')).text_config)).to.deep.equal({ moeLayers: 2, perExpert: 2304, inactivePerToken: 27648 });
  });

  for (const [name, tensors] of [['moe_a', 118], ['moe_b', 61]] as const) {
    it(`${name}: lists every weight per expert (fused files too) and ends with the count line`, () => {
      const dir = fixturePath('models', name);
      const lines = inspectMoe(dir, path.join(dir, 'config.json'));
      expect(lines.filter((l) => /^ {2}model\.language_model\.layers\.1\.mlp\.experts\.0\.(gate|up|down)_proj\.weight /.test(l))).to.have.length(3);
      expect(lines.some((l) => /^ {2}active per token: [\d,]+ of [\d,]+ parameters$/.test(l))).to.equal(true);
      expect(lines[lines.length - 1]).to.match(new RegExp(`^inspect: ${tensors} tensors, \\d+ parameters$`));
    });
  }
});
