import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { AdamW, paramGroups, scaleGroups } from '../../train/adamw';
import { clipGradNorm } from '../../train/clip';
import { cosineWithWarmup } from '../../train/schedule';
import { microBatchGrads } from '../../train/step';
import { referenceInputs } from '../../cli/parity_runner';
import { loadModel } from '../../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { expectClose, expectCloseAsync } from '../helpers/expect_close';
import { fixturePath, loadReference } from '../helpers/fixtures';

const ref = loadReference(fixturePath('train', 'adamw_tiny_a.safetensors'));
const cfg = JSON.parse(ref.metadata.train_config!) as {
  lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number;
  warmup_steps: number; total_steps: number; steps: number;
};

const first = async (t: tf.Tensor) => (await t.data())[0]!;

/** One optimizer step as the reference script takes it: grads of the loss (the trainer's), clip, lr from the schedule, AdamW. */
function step(model: Glm4vForConditionalGeneration, opt: AdamW, inputs: ReturnType<typeof referenceInputs>, lr: number): tf.Tensor[] {
  const params = model.namedParameters();
  const { loss: value, grads } = microBatchGrads(model, inputs, params, 1);
  const clipped = clipGradNorm(grads, cfg.max_grad_norm);
  opt.lr = lr;
  opt.step(clipped.grads);
  tf.dispose([...grads.values(), ...clipped.grads.values()]);
  return [value, clipped.totalNorm];
}

describe('AdamW + clip_grad_norm_ + warmup-cosine vs torch.optim.AdamW (tiny_a, 5 steps)', () => {
  let model: Glm4vForConditionalGeneration;
  let opt: AdamW;
  let inputs: ReturnType<typeof referenceInputs>;
  const sched = cosineWithWarmup({ warmupSteps: cfg.warmup_steps, totalSteps: cfg.total_steps });
  before(() => {
    inputs = referenceInputs(loadReference(fixturePath('model', 'tiny_a_batch.safetensors')).tensors);
    model = loadModel(ref.modelDir);
    const params = model.namedParameters();
    opt = new AdamW(params, paramGroups(params, cfg.weight_decay), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps });
  });
  after(() => {
    opt.dispose();
    model.dispose();
    inputs.pixelValues!.dispose();
  });

  it('one step: loss, grad norm, lr and the updated parameters equal torch', async () => {
    const [loss, norm] = step(model, opt, inputs, cfg.lr * sched(0));
    expectClose([await first(loss!)], [ref.get('train:loss').data[0]!], { atol: 0, rtol: 1e-5, label: 'loss 1' });
    expectClose([await first(norm!)], [ref.get('train:grad_norm').data[0]!], { atol: 0, rtol: 1e-5, label: 'grad norm 1' });
    expect(Math.fround(cfg.lr * sched(0))).to.equal(ref.get('train:lr').data[0]);
    // Adam's first step is lr * g / (|g| + eps): where |g| is near eps, float noise in g shows up scaled by lr.
    const params = model.namedParameters();
    const keys = [...ref.tensors.keys()].filter((k) => k.startsWith('step1:'));
    expect(keys.length).to.equal(10);
    let worst = 0;
    for (const k of keys) worst = Math.max(worst, (await expectCloseAsync(params.get(k.slice(6))!, ref.get(k), { atol: 1e-4, label: k })).maxAbs);
    console.log(`      step 1: max |param - torch| ${worst.toExponential(2)} over ${keys.length} parameters`);
    tf.dispose([loss!, norm!]);
  });

  it('after 5 steps every parameter is within 1e-4 of torch (losses and norms along the way too)', async () => {
    for (let k = 1; k < cfg.steps; k++) {
      const [loss, norm] = step(model, opt, inputs, cfg.lr * sched(k));
      expectClose([await first(loss!)], [ref.get('train:loss').data[k]!], { atol: 0, rtol: 1e-4, label: `loss ${k + 1}` });
      expectClose([await first(norm!)], [ref.get('train:grad_norm').data[k]!], { atol: 0, rtol: 1e-4, label: `grad norm ${k + 1}` });
      expect(Math.fround(cfg.lr * sched(k)), `lr ${k + 1}`).to.equal(ref.get('train:lr').data[k]);
      tf.dispose([loss!, norm!]);
    }
    let worst = 0, n = 0;
    for (const [key, v] of model.namedParameters()) {
      worst = Math.max(worst, (await expectCloseAsync(v, ref.get(`param:${key}`), { atol: 1e-4, label: `param:${key}` })).maxAbs);
      n++;
    }
    expect(n).to.equal([...ref.tensors.keys()].filter((k) => k.startsWith('param:')).length);
    console.log(`      step 5: max |param - torch| ${worst.toExponential(2)} over ${n} parameters`);
  });
});

describe('AdamW', () => {
  const variable = (t: tf.Tensor) => {
    const v = tf.variable(t);
    t.dispose();
    return v;
  };
  const make = (vals: number[][]) => new Map(vals.map((v, i) => [`p${i}`, variable(tf.tensor(v, [v.length, 1]))] as const));

  it('skips a parameter that has no gradient: no decay, no step count', async () => {
    const params = make([[1, 2], [3, 4]]);
    const opt = new AdamW(params, [{ keys: ['p0', 'p1'], weightDecay: 0.5 }], { lr: 0.1 });
    const g = tf.ones([2, 1]);
    opt.step(new Map([['p0', g]]));
    expect(Array.from(await params.get('p1')!.data())).to.deep.equal([3, 4]);
    expect(await first(params.get('p0')!)).to.not.equal(1);
    expect(opt.stepCount).to.equal(1);
    tf.dispose([g, ...params.values()]);
    opt.dispose();
  });

  it('groups: names the parameter that is in no group or in two', () => {
    const params = make([[1], [2]]);
    expect(() => new AdamW(params, [{ keys: ['p0'], weightDecay: 0 }], { lr: 1 })).to.throw('parameters in no group: p1');
    expect(() => new AdamW(params, [{ keys: ['p0', 'p1'], weightDecay: 0 }, { keys: ['p1'], weightDecay: 0 }], { lr: 1 })).to.throw("'p1' is in more than one");
    tf.dispose([...params.values()]);
  });

  it('puts 1-D parameters (biases, norms) in an undecayed group', () => {
    const params = new Map([['w', variable(tf.zeros([2, 2]))], ['b', variable(tf.zeros([2]))]]);
    expect(paramGroups(params, 0.1)).to.deep.equal([{ keys: ['w'], weightDecay: 0.1 }, { keys: ['b'], weightDecay: 0 }]);
    expect(paramGroups(params, 0.1, true)).to.deep.equal([{ keys: ['w', 'b'], weightDecay: 0.1 }]);
    tf.dispose([...params.values()]);
  });

  it('a group with lrScale steps as an optimizer at lrScale x lr (weight decay included); scaleGroups splits groups', async () => {
    const scaled = make([[0.5, -1, 2], [1, 1, 1]]), alone = make([[0.5, -1, 2], [1, 1, 1]]);
    const groups = scaleGroups(paramGroups(scaled, 0.1, true), (k) => k === 'p1', 0.25);
    expect(groups).to.deep.equal([{ keys: ['p0'], weightDecay: 0.1 }, { keys: ['p1'], weightDecay: 0.1, lrScale: 0.25 }]);
    const a = new AdamW(scaled, groups, { lr: 0.05 });
    const b0 = new AdamW(new Map([['p0', alone.get('p0')!]]), [{ keys: ['p0'], weightDecay: 0.1 }], { lr: 0.05 });
    const b1 = new AdamW(new Map([['p1', alone.get('p1')!]]), [{ keys: ['p1'], weightDecay: 0.1 }], { lr: 0.0125 });
    for (let k = 0; k < 4; k++) {
      const g = new Map([['p0', tf.tensor([k, -1, 0.5], [3, 1])], ['p1', tf.tensor([1, k, -2], [3, 1])]]);
      a.step(g);
      b0.step(new Map([['p0', g.get('p0')!]]));
      b1.step(new Map([['p1', g.get('p1')!]]));
      tf.dispose([...g.values()]);
    }
    for (const k of ['p0', 'p1'] as const) expect(Array.from(await scaled.get(k)!.data()), k).to.deep.equal(Array.from(await alone.get(k)!.data()));
    expect(Array.from(await scaled.get('p1')!.data())).to.not.deep.equal(Array.from(await scaled.get('p0')!.data()));
    [a, b0, b1].forEach((o) => o.dispose());
    tf.dispose([...scaled.values(), ...alone.values()]);
  });

  it('saved and reloaded state continues exactly as the optimizer that never stopped, and owns no extra tensors', async () => {
    const run = async (reload: boolean) => {
      const params = make([[0.5, -1, 2], [1, 1, 1]]);
      let opt = new AdamW(params, paramGroups(params, 0.1, true), { lr: 0.05, betas: [0.8, 0.9] });
      const grad = (k: number) => new Map([...params.keys()].map((key, i) => [key, tf.tensor([k + i, -k, 0.5 * i], [3, 1])]));
      for (let k = 0; k < 6; k++) {
        if (reload && k === 3) {
          const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'adamw-')), 'opt.safetensors');
          await opt.saveState(file);
          opt.dispose();
          opt = new AdamW(params, paramGroups(params, 0.1, true), { lr: 0.05, betas: [0.8, 0.9] });
          opt.loadState(file);
        }
        const g = grad(k);
        opt.step(g);
        tf.dispose([...g.values()]);
      }
      const out: number[][] = [];
      for (const v of params.values()) out.push(Array.from(await v.data()));
      expect(opt.stepCount).to.equal(6);
      opt.dispose();
      tf.dispose([...params.values()]);
      return out;
    };
    const before = tf.memory().numTensors;
    expect(await run(true)).to.deep.equal(await run(false));
    expect(tf.memory().numTensors).to.equal(before);
  });
});
