import { expect } from 'chai';
import { applyRepetitionPenalty, applyTopK, applyTopP, argmax, makeSampler, softmax } from '../../generation/sampling';
import { splitmix32 } from '../../lib/rng';

describe('sampling', () => {
  it('argmax takes the first of equal maxima', () => {
    expect(argmax([1, 3, 3, 2])).to.equal(1);
  });

  it('temperature 0 is greedy whatever the seed', () => {
    const logits = Float32Array.from([0.1, 2, -1, 1.9]);
    expect(makeSampler({ seed: 1 })(logits, [])).to.equal(1);
    expect(makeSampler({ temperature: 0, seed: 9 })(logits, [])).to.equal(1);
  });

  it('top-k keeps the k largest logits', () => {
    expect(Array.from(applyTopK(Float32Array.from([1, 4, 2, 3]), 2))).to.deep.equal([-Infinity, 4, -Infinity, 3]);
  });

  it('top-p keeps the smallest set whose mass reaches p, and always the best token', () => {
    const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]);
    // ascending: 0.05, 0.15, 0.3, 0.5; cumulative 0.05, 0.2 (<= 1 - 0.75 = 0.25) are dropped, 0.5 > 0.25 stops
    expect(Array.from(applyTopP(logits, 0.75)).map(Number.isFinite)).to.deep.equal([true, true, false, false]);
    expect(Array.from(applyTopP(logits, 0.01)).map(Number.isFinite)).to.deep.equal([true, false, false, false]);
  });

  it('repetition penalty divides positive and multiplies negative logits of seen tokens once', () => {
    expect(Array.from(applyRepetitionPenalty(Float32Array.from([2, -2, 1]), [0, 1, 1], 2))).to.deep.equal([1, -4, 1]);
  });

  it('draws follow the probabilities', () => {
    const probs = [0.1, 0.6, 0.3];
    const sample = makeSampler({ temperature: 1, seed: 5 });
    const counts = [0, 0, 0];
    const logits = Float32Array.from(probs.map(Math.log));
    for (let i = 0; i < 4000; i++) counts[sample(logits, [])]!++;
    counts.forEach((c, i) => expect(c / 4000).to.be.closeTo(probs[i]!, 0.03));
  });

  it('softmax is stable for large logits and the rng is in [0, 1)', () => {
    const p = softmax([1000, 1000]);
    expect(Array.from(p)).to.deep.equal([0.5, 0.5]);
    const r = splitmix32(1);
    for (let i = 0; i < 1000; i++) {
      const x = r();
      expect(x >= 0 && x < 1).to.equal(true);
    }
  });
});
