import { expect } from 'chai';
import { readGenerationConfig } from '../../generation/generation_config';
import { fixturePath } from '../helpers/fixtures';

describe('readGenerationConfig', () => {
  it("reads GLM-4.1V-9B-Thinking's generation_config.json as it is (sampling, top-k 2, top-p 0.6, four stop ids)", () => {
    expect(readGenerationConfig(fixturePath('glm-configs', 'GLM-4.1V-9B-Thinking'))).to.deep.equal({
      eosTokenId: [151329, 151336, 151338, 151348], padTokenId: 151329, temperature: 0.8, topK: 2, topP: 0.6,
    });
  });
});
