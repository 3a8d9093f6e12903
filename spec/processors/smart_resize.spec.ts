import { expect } from 'chai';
import * as fs from 'fs';
import { ProcessorError } from '../../processors/errors';
import { pyRound, smartResize } from '../../processors/smart_resize';
import { fixturePath } from '../helpers/fixtures';

// Inputs and results (or error messages) of HF smart_resize, from scripts/parity/cases_image_processor.py.
interface Row {
  args: [number, number, number, number, number, number, number];
  result?: [number, number];
  error?: string;
}
const rows = JSON.parse(fs.readFileSync(fixturePath('image_processor', 'smart_resize_cases.json'), 'utf8')) as Row[];

describe('pyRound', () => {
  it('rounds halves to even like Python 3 round()', () => {
    expect([0.5, 1.5, 2.5, 3.5, 4.5, -0.5, -1.5, -2.5].map(pyRound)).to.deep.equal([0, 2, 2, 4, 4, -0, -2, -2]);
  });

  it('rounds everything else to the nearest integer', () => {
    expect([2.4999, 2.5001, 1.2, -1.7, 7].map(pyRound)).to.deep.equal([2, 3, 1, -2, 7]);
  });
});

describe('smartResize', () => {
  it('has reference cases for every branch', () => {
    expect(rows.length).to.be.at.least(15);
    expect(rows.filter((r) => r.error).length).to.equal(3);
  });

  for (const r of rows) {
    const [t, h, w, tf, factor, minP, maxP] = r.args;
    const label = `t=${t} ${h}x${w} factor ${factor} pixels [${minP}, ${maxP}]`;
    if (r.result) {
      it(`${label} -> ${r.result.join('x')}`, () => {
        expect(smartResize(t, h, w, tf, factor, minP, maxP)).to.deep.equal(r.result);
      });
    } else {
      it(`${label} -> error "${r.error}"`, () => {
        expect(() => smartResize(t, h, w, tf, factor, minP, maxP)).to.throw(ProcessorError, r.error!);
        try {
          smartResize(t, h, w, tf, factor, minP, maxP);
        } catch (e) {
          expect((e as Error).message).to.equal(r.error);
        }
      });
    }
  }

  it('rounds a 2.5 ratio down to 2 factors where Math.round would give 3', () => {
    const row = rows.find((r) => r.args[1] === 70 && r.args[2] === 42)!;
    expect(row.result).to.deep.equal([56, 56]);
    expect(Math.round(70 / 28) * 28).to.equal(84);
    expect(smartResize(2, 70, 42, 2, 28, 3136, 6272)).to.deep.equal(row.result);
  });

  it('uses the HF defaults (factor 28, 12544 .. 9633792)', () => {
    const row = rows.find((r) => r.args[1] === 3000 && r.args[2] === 4000)!;
    expect(smartResize(2, 3000, 4000)).to.deep.equal(row.result);
  });

  it('rejects non-positive sizes instead of dividing by zero', () => {
    expect(() => smartResize(2, 0, 10)).to.throw(ProcessorError, 'size must be positive');
  });
});
