// parseGlm4vConfig on the tiny fixtures (v5 and v4 rope spellings) and its errors, which name the key path.
import { expect } from 'chai';
import * as path from 'path';
import { ConfigError, readJson } from '../../../lib/config';
import { parseGlm4vConfig } from '../../../models/glm4v/config';
import { fixturePath } from '../../helpers/fixtures';

/** a config.json as loosely typed data, to break on purpose */
type Loose = Record<string, any>;
const load = (name: string) => readJson(fixturePath('models', name, 'config.json')) as Loose;
const withText = (name: string, edit: (t: Loose) => void) => {
  const j = load(name);
  edit(j.text_config);
  return j;
};

describe('parseGlm4vConfig', () => {
  it('reads tiny_a (glm4v, v5 rope_parameters) with its derived sizes', () => {
    const c = parseGlm4vConfig(load('tiny_a'));
    const t = c.text_config;
    expect(c.model_type).to.equal('glm4v');
    expect(t.rope_parameters).to.deep.equal({ rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5, mrope_section: [1, 2, 1] });
    expect([t.headDim, t.rotaryDim, t.numKvGroups]).to.deep.equal([16, 8, 2]);
    expect([t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads]).to.deep.equal([64, 2, 4, 2]);
    expect(t.pad_token_id).to.equal(352);
  });

  // transformers reads the same file as rope_parameters {default, 500000, 0.5, [2, 1, 1]} (tiny_models.build asserts it)
  it('reads tiny_b (glm46v, v4 rope_scaling + rope_theta + partial_rotary_factor) as transformers does', () => {
    const c = parseGlm4vConfig(load('tiny_b'));
    const t = c.text_config;
    expect(c.model_type).to.equal('glm46v');
    expect(t.rope_parameters).to.deep.equal({ rope_type: 'default', rope_theta: 500000, partial_rotary_factor: 0.5, mrope_section: [2, 1, 1] });
    expect([t.headDim, t.rotaryDim, t.numKvGroups]).to.deep.equal([16, 8, 3]);
    expect(c.video_start_token_id).to.equal(364); // the file wins over Glm46VConfig's class default 151361
  });

  it('names the key path and the sums when mrope_section does not fit the rotary dim', () => {
    const j = withText('tiny_a', (t) => { t.rope_parameters.mrope_section = [1, 2, 2]; });
    expect(() => parseGlm4vConfig(j, 'x/config.json')).to.throw(
      ConfigError, 'x/config.json: text_config.rope_parameters.mrope_section: [1,2,2] sums to 5 but rotary dim/2 is 4',
    );
    const b = withText('tiny_b', (t) => { t.rope_scaling.mrope_section = [2, 2, 2]; });
    expect(() => parseGlm4vConfig(b)).to.throw(ConfigError, /^config\.json: text_config\.rope_scaling\.mrope_section: \[2,2,2\] sums to 6 but rotary dim\/2 is 4/);
  });

  it('catches the missing partial_rotary_factor trap (factor 1.0 makes the rotary dim 16, so [1, 2, 1] no longer fits)', () => {
    const j = withText('tiny_a', (t) => { delete t.rope_parameters.partial_rotary_factor; });
    expect(() => parseGlm4vConfig(j)).to.throw(ConfigError, /text_config\.rope_parameters\.mrope_section: \[1,2,1\] sums to 4 but rotary dim\/2 is 8/);
  });

  it('names the key of other broken text fields', () => {
    const cases: Array<[(t: Loose) => void, RegExp]> = [
      [(t) => { t.num_key_value_heads = 3; }, /text_config\.num_attention_heads: 4 is not divisible by num_key_value_heads 3/],
      [(t) => { t.rope_parameters.mrope_section = [4, 4]; }, /text_config\.rope_parameters\.mrope_section: expected three non-negative integers/],
      [(t) => { t.rope_parameters.rope_theta = -1; }, /text_config\.rope_parameters\.rope_theta: expected a positive number/],
      [(t) => { t.hidden_act = 'gelu'; }, /text_config\.hidden_act: only 'silu'/],
      [(t) => { t.hidden_size = 'big'; }, /text_config\.hidden_size: expected a number/],
    ];
    for (const [edit, re] of cases) expect(() => parseGlm4vConfig(withText('tiny_a', edit)), String(re)).to.throw(ConfigError, re);
  });

  it('reads the fixture files through readJson with the file name in errors', () => {
    expect(() => readJson(path.join(fixturePath('models'), 'nope', 'config.json'))).to.throw(ConfigError, /nope\/config\.json: cannot read/);
  });
});
