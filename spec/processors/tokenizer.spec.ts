// GlmTokenizer against the transformers tokenizer of the tiny model (spec/fixtures/processor/tokenizer_cases.json).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expect } from 'chai';
import { GlmTokenizer, ProcessorError } from '../../processors/tokenizer';
import { fixturePath } from '../helpers/fixtures';

interface Cases {
  model: string;
  encode: { text: string; ids: number[] }[];
  decode: { ids: number[]; skip_special_tokens: boolean; expected: string }[];
  batch_decode: { ids: number[][]; expected: string[]; expected_skip_special: string[]; expected_post_process: string[] };
  special_ids: Record<string, number>;
  eos_token_id: number;
  pad_token_id: number;
  padding_side: string;
}

const cases = JSON.parse(fs.readFileSync(fixturePath('processor', 'tokenizer_cases.json'), 'utf8')) as Cases;
const modelDir = path.resolve(fixturePath('processor'), cases.model);

describe('processors/tokenizer', () => {
  const tok = GlmTokenizer.fromPretrained(modelDir);

  it('encodes like the transformers tokenizer (ids exact)', () => {
    expect(cases.encode.length).to.be.greaterThan(5);
    for (const c of cases.encode) expect(tok.encode(c.text), JSON.stringify(c.text)).to.deep.equal(c.ids);
  });

  it('decodes with and without special tokens like transformers', () => {
    expect(cases.decode.some((c) => c.skip_special_tokens)).to.equal(true);
    for (const c of cases.decode) {
      expect(tok.decode(c.ids, { skipSpecialTokens: c.skip_special_tokens }), `${c.ids} skip=${c.skip_special_tokens}`).to.equal(c.expected);
    }
  });

  it('batchDecodes like transformers', () => {
    const b = cases.batch_decode;
    expect(b.expected).to.not.deep.equal(b.expected_skip_special);
    expect(tok.batchDecode(b.ids)).to.deep.equal(b.expected);
    expect(tok.batchDecode(b.ids, { skipSpecialTokens: true })).to.deep.equal(b.expected_skip_special);
  });

  it('gives special-token ids by name, eos/pad and the padding side', () => {
    expect(Object.keys(cases.special_ids).length).to.be.greaterThan(20);
    for (const [t, id] of Object.entries(cases.special_ids)) expect(tok.tokenToId(t), t).to.equal(id);
    expect(tok.eosTokenId).to.equal(cases.eos_token_id);
    expect(tok.padTokenId).to.equal(cases.pad_token_id);
    expect(tok.paddingSide).to.equal(cases.padding_side);
    expect(() => tok.tokenToId('<|no_such_token|>')).to.throw(ProcessorError, '<|no_such_token|>');
  });

  it('pads a batch on the left with the pad token and a zero attention mask', () => {
    const { inputIds, attentionMask } = tok.encodeBatch(['red', 'What colour is the circle?']);
    const short = tok.encode('red');
    const L = inputIds[1]!.length;
    expect(inputIds[0]).to.deep.equal([...new Array(L - short.length).fill(cases.pad_token_id), ...short]);
    expect(attentionMask[0]).to.deep.equal([...new Array(L - short.length).fill(0), ...new Array(short.length).fill(1)]);
    expect(attentionMask[1]).to.deep.equal(new Array(L).fill(1));
    const right = tok.encodeBatch(['red', 'What colour is the circle?'], { paddingSide: 'right' });
    expect(right.inputIds[0]!.slice(0, short.length)).to.deep.equal(short);
  });

  it('names the folder and the file when tokenizer.json is missing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glm-tok-'));
    try {
      fs.copyFileSync(path.join(modelDir, 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
      expect(() => GlmTokenizer.fromPretrained(dir)).to.throw(ProcessorError, `${dir} has no tokenizer.json`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
