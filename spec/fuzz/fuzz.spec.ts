// A 2,000-input run of the mutation fuzzer (scripts/fuzz/fuzz.ts, seed 1): every input of every format ends in a
// valid result or a named one-line error, none crashes, hangs or passes the memory bound. docs/reliability.md has
// the 100,000-input run.
import { expect } from 'chai';
import { DEFAULTS, formatReport, FuzzReport, runFuzz } from '../../scripts/fuzz/fuzz';
import { FORMATS } from '../../scripts/fuzz/targets';

describe('fuzzing the image, safetensors and config readers (2,000 inputs, seed 1)', function () {
  this.timeout(120000);
  let report: FuzzReport;

  before(async () => {
    // 5 s per input rather than the documented run's 2 s: the suite shares the CPU with whatever else runs.
    report = await runFuzz({ ...DEFAULTS, inputs: 2000, seed: 1, timeoutMs: 5000 });
  });

  it('no input crashes, hangs or passes the memory bound', () => {
    expect(report.findings, formatReport(report)).to.deep.equal([]);
  });

  it('every format gets its share of inputs, and each ends both ways (valid results and named errors)', () => {
    FORMATS.forEach((f, i) => {
      const c = report.counts[f]!, share = Math.floor(2000 / FORMATS.length) + (i < 2000 % FORMATS.length ? 1 : 0);
      expect(c.valid + c.error, `${f}\n${formatReport(report)}`).to.equal(share);
      expect(c.valid, `${f} valid`).to.be.greaterThan(0);
      expect(c.error, `${f} named errors`).to.be.greaterThan(0);
    });
  });

  it('stays under the memory bound with room to spare', () => {
    expect(report.peakRssMb).to.be.greaterThan(0).and.lessThan(DEFAULTS.memoryMb / 2);
  });
});
