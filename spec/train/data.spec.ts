import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ChatDataset, DataError } from '../../train/data';
import { fixturePath } from '../helpers/fixtures';

const TINY_A = fixturePath('models', 'tiny_a');
const TRAIN = fixturePath('train', 'data', 'train.jsonl');

/** Writes `lines` as a JSONL file in a fresh temporary folder (relative image paths resolve there). */
function jsonl(lines: string[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'data-')), 'x.jsonl');
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

const chat = (user: unknown, answer: string | null = 'Yes.') =>
  JSON.stringify({ messages: [{ role: 'user', content: user }, ...(answer === null ? [] : [{ role: 'assistant', content: answer }])] });

describe('ChatDataset (JSONL chats -> labelled rows and padded batches)', () => {
  const ds = ChatDataset.fromPretrained(TINY_A);
  const tok = ds.processor.tokenizer;
  const IMAGE = ds.processor.imageTokenId;
  const made: string[] = [];
  const tmp = (lines: string[]) => {
    const f = jsonl(lines);
    made.push(f);
    return f;
  };
  after(() => made.forEach((f) => fs.rmSync(f, { force: true })));

  it("labels only the assistant's tokens (and the appended eos); prompt and image placeholders are -100", () => {
    const { examples, skipped } = ds.load(TRAIN);
    expect(examples.map((e) => e.line)).to.deep.equal([1, 2, 3, 4, 6, 7]); // line 5 is blank
    expect(skipped).to.deep.equal([]);
    const first = examples[0]!;
    expect(first.imageGridThw).to.deep.equal([[1, 4, 4]]);
    expect(first.inputIds.filter((id) => id === IMAGE)).to.have.length(4);
    const learned = first.labels.map((y, t) => (y === -100 ? -1 : t)).filter((t) => t >= 0);
    const start = learned[0]!;
    expect(learned).to.deep.equal(Array.from({ length: first.labels.length - start }, (_, i) => start + i)); // one span, to the end
    expect(tok.decode(first.inputIds.slice(0, start))).to.match(/<\|assistant\|>\n$/);
    expect(tok.decode(first.labels.slice(start))).to.equal('Red.<|endoftext|>');
    const multi = examples[3]!;
    expect(tok.decode(multi.labels.filter((y) => y >= 0))).to.equal('Four.Five.<|endoftext|>');
    expect(examples[4]!.imageGridThw).to.deep.equal([[1, 6, 4], [1, 4, 4]]);
  });

  it("trainOn 'all' learns every token but the image placeholders; appendEos false adds nothing", () => {
    const all = new ChatDataset(ds.processor, { trainOn: 'all', appendEos: false });
    const ex = all.load(TRAIN).examples[0]!;
    ex.inputIds.forEach((id, t) => expect(ex.labels[t]).to.equal(id === IMAGE ? -100 : id));
    expect(tok.decode(ex.inputIds)).to.match(/Red\.$/);
  });

  it('pads a batch on the tokenizer side (left here): pad id, attention 0, label -100, images in order', () => {
    const { examples } = ds.load(TRAIN);
    const b = ds.collate([examples[0]!, examples[1]!, examples[4]!]);
    const L = 39;
    expect(b.inputs.inputIds.map((r) => r.length)).to.deep.equal([L, L, L]);
    expect(b.inputs.attentionMask[1]).to.deep.equal([...new Array(L - 17).fill(0), ...new Array(17).fill(1)]);
    expect(b.inputs.inputIds[1]!.slice(0, L - 17)).to.deep.equal(new Array(L - 17).fill(tok.padTokenId));
    expect(b.inputs.labels[1]!.slice(0, L - 17)).to.deep.equal(new Array(L - 17).fill(-100));
    expect(b.inputs.labels[1]!.slice(L - 17)).to.deep.equal(examples[1]!.labels);
    expect(b.inputs.imageGridThw).to.deep.equal([[1, 4, 4], [1, 6, 4], [1, 4, 4]]);
    expect(b.inputs.pixelValues!.shape).to.deep.equal([16 + 24 + 16, 1176]);
    expect(b.numTokens).to.equal(24 + 17 + 39);
    expect(b.lines).to.deep.equal([1, 2, 6]);
    b.inputs.pixelValues!.dispose();
    const text = ds.collate([examples[1]!]);
    expect(text.inputs.pixelValues).to.equal(undefined);
  });

  it('skips (and counts) examples over maxLength, or rejects them naming the line', () => {
    const skip = new ChatDataset(ds.processor, { maxLength: 30 });
    const d = skip.load(TRAIN);
    expect(d.examples.map((e) => e.line)).to.deep.equal([1, 2, 7]);
    expect(d.skipped).to.deep.equal([{ line: 3, tokens: 32 }, { line: 4, tokens: 49 }, { line: 6, tokens: 39 }]);
    const strict = new ChatDataset(ds.processor, { maxLength: 30, onTooLong: 'error' });
    expect(() => strict.load(TRAIN)).to.throw(DataError, /train\.jsonl:3: 32 tokens, longer than the maximum length 30/);
  });

  it('errors name the line: malformed JSON, missing image, no assistant turn, bad shapes', () => {
    const ok = chat('Hello?');
    const cases: [string, RegExp][] = [
      ['{"messages": [', /:2: malformed JSON/],
      [chat([{ type: 'image', image: 'nope.png' }, { type: 'text', text: 'x' }]), /:2: image "nope\.png" not found \(looked at .*nope\.png\)/],
      [chat('Hello?', null), /:2: no assistant turn to learn from/],
      [JSON.stringify({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: '' }] }), /:2: every assistant turn is empty/],
      [JSON.stringify({ text: 'x' }), /:2: expected an object with a "messages" list/],
      [JSON.stringify({ messages: [{ content: 'x' }] }), /:2: message 0 has no "role"/],
      [chat([{ type: 'image' }]), /:2: message 0 part 0: an image part needs "image": "<path>"/],
    ];
    for (const [bad, re] of cases) {
      const f = tmp([ok, bad, ok]);
      expect(() => ds.load(f), String(re)).to.throw(DataError, re);
    }
    expect(() => ds.load('/nonexistent/x.jsonl')).to.throw(DataError, '/nonexistent/x.jsonl: cannot read (ENOENT)');
  });
});
