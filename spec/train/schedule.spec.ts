import { expect } from 'chai';
import { constantWithWarmup, cosineWithWarmup } from '../../train/schedule';
import { fixturePath, loadReference } from '../helpers/fixtures';

describe('learning-rate schedules vs transformers (LambdaLR.get_last_lr, 16 steps)', () => {
  const ref = loadReference(fixturePath('train', 'adamw_tiny_a.safetensors'));
  const tables = JSON.parse(ref.metadata.schedules!) as Record<string, [number, number, number, number]>;
  for (const [name, [warmupSteps, totalSteps, numCycles, minLrRate]] of Object.entries(tables)) {
    it(`${name}: warmup ${warmupSteps}, total ${totalSteps}, cycles ${numCycles}, min rate ${minLrRate}`, () => {
      const f = cosineWithWarmup({ warmupSteps, totalSteps, numCycles, minLrRate });
      const expected = ref.get(`sched:${name}`).data;
      expect(expected.length).to.equal(16);
      expected.forEach((e, k) => expect(Math.fround(f(k)), `step ${k}`).to.equal(e));
    });
  }

  it('starts at 0 during warmup and reaches 1 at its end', () => {
    const f = cosineWithWarmup({ warmupSteps: 4, totalSteps: 10 });
    expect([0, 1, 2, 3, 4].map(f)).to.deep.equal([0, 0.25, 0.5, 0.75, 1]);
    expect(constantWithWarmup(2)(1)).to.equal(0.5);
    expect(constantWithWarmup(2)(7)).to.equal(1);
  });

  it('rejects nonsense step counts', () => {
    expect(() => cosineWithWarmup({ warmupSteps: -1, totalSteps: 10 })).to.throw('warmup steps must be an integer >= 0, got -1');
    expect(() => cosineWithWarmup({ warmupSteps: 0, totalSteps: 0 })).to.throw('total steps must be an integer >= 1, got 0');
  });
});
