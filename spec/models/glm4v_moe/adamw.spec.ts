// AdamW on the MoE against torch.optim.AdamW on transformers' model (scripts/parity/cases_train_moe.py): 5 steps with
// clipping and a cosine schedule on one short row, so that experts go unchosen. transformers holds each layer's
// experts as one fused tensor, so an unchosen expert still decays and advances its moments: ours must do the same.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { referenceInputs } from '../../../cli/parity_runner';
import { AdamW, fusedParameterSets, paramGroups } from '../../../train/adamw';
import { clipGradNorm } from '../../../train/clip';
import { cosineWithWarmup } from '../../../train/schedule';
import { microBatchGrads } from '../../../train/step';
import { loadModel } from '../../../models/glm4v/auto';
import type { Glm4vForConditionalGeneration } from '../../../models/glm4v/model';
import { Glm4vMoeTextTopkRouter } from '../../../models/glm4v_moe/moe';
import { expectClose, expectCloseAsync } from '../../helpers/expect_close';
import { fixturePath, loadReference } from '../../helpers/fixtures';

const ref = loadReference(fixturePath('moe', 'train', 'adamw_moe_a.safetensors'));
const cfg = JSON.parse(ref.metadata.train_config!) as {
  lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number;
  warmup_steps: number; total_steps: number; steps: number;
};
const first = async (t: tf.Tensor) => (await t.data())[0]!;

interface Run {
  model: Glm4vForConditionalGeneration;
  /** per MoE layer path: per step, the experts any token chose */
  routes: Map<string, Set<number>[]>;
  losses: number[];
  norms: number[];
}

/** Trains a fresh moe_a for cfg.steps steps as the reference script; `fused`: AdamW steps each fused expert set as one tensor. */
async function train(fused: boolean): Promise<Run> {
  const model = loadModel(ref.modelDir);
  const routes = new Map<string, Set<number>[]>();
  let step = 0;
  for (const [p, m] of model.namedModules()) {
    if (!(m instanceof Glm4vMoeTextTopkRouter)) continue;
    const layer = p.replace(/\.mlp\.gate$/, ''), forward = m.forward.bind(m);
    routes.set(layer, []);
    m.forward = (x) => {
      const out = forward(x);
      const r = routes.get(layer)!;
      const chosen = (r[step] ??= new Set());
      out[2].forEach((e) => chosen.add(e));
      return out;
    };
  }
  const params = new Map([...model.namedParameters()].filter(([, v]) => v.trainable));
  const opt = new AdamW(params, paramGroups(params, cfg.weight_decay), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, ...(fused ? { fused: fusedParameterSets(model, params) } : {}) });
  const inputs = referenceInputs(ref.tensors);
  const sched = cosineWithWarmup({ warmupSteps: cfg.warmup_steps, totalSteps: cfg.total_steps });
  const losses: number[] = [], norms: number[] = [];
  for (; step < cfg.steps; step++) {
    const { loss, grads } = microBatchGrads(model, inputs, params, 1);
    const clipped = clipGradNorm(grads, cfg.max_grad_norm);
    opt.lr = cfg.lr * sched(step);
    opt.step(clipped.grads);
    losses.push(await first(loss));
    norms.push(await first(clipped.totalNorm));
    tf.dispose([loss, clipped.totalNorm, ...grads.values(), ...clipped.grads.values()]);
  }
  opt.dispose();
  return { model, routes, losses, norms };
}

/** The largest |ours - torch| over every trainable parameter after the last step (each checked within 1e-4 when `check`). */
async function worstParam(model: Glm4vForConditionalGeneration, check: boolean): Promise<number> {
  let worst = 0, n = 0;
  for (const [key, v] of model.namedParameters()) {
    if (!v.trainable) continue;
    const want = ref.get(`param:${key}`);
    if (check) worst = Math.max(worst, (await expectCloseAsync(v, want, { atol: 1e-4, label: `param:${key}` })).maxAbs);
    else {
      const got = await v.data();
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want.data[i]!));
    }
    n++;
  }
  expect(n).to.equal([...ref.tensors.keys()].filter((k) => k.startsWith('param:')).length);
  return worst;
}

describe('AdamW + clip_grad_norm_ on glm4v_moe vs torch.optim.AdamW on fused experts (moe_a, 5 steps)', () => {
  it('every step routes as torch, with experts left unchosen; every parameter ends within 1e-4 of torch', async () => {
    const { model, routes, losses, norms } = await train(true);
    // as spec/train/adamw.spec.ts: rtol 1e-5 before the first step, 1e-4 along the way
    expectClose(losses.slice(0, 1), ref.get('train:loss').data.subarray(0, 1), { atol: 0, rtol: 1e-5, label: 'loss 1' });
    expectClose(norms.slice(0, 1), ref.get('train:grad_norm').data.subarray(0, 1), { atol: 0, rtol: 1e-5, label: 'grad norm 1' });
    expectClose(losses, ref.get('train:loss').data, { atol: 0, rtol: 1e-4, label: 'losses' });
    expectClose(norms, ref.get('train:grad_norm').data, { atol: 0, rtol: 1e-4, label: 'grad norms' });
    let unchosen = 0;
    for (const [layer, steps] of routes) {
      const want = ref.get(`route:${layer}`);
      const E = want.shape[1]!;
      steps.forEach((got, s) => {
        const row = Array.from({ length: E }, (_, e) => (got.has(e) ? 1 : 0));
        expect(row, `${layer} step ${s + 1}`).to.deep.equal(Array.from(want.data.subarray(s * E, (s + 1) * E)));
        unchosen += E - got.size;
      });
    }
    expect(unchosen, 'expert-steps with no token').to.be.greaterThan(0);
    const worst = await worstParam(model, true);
    console.log(`      step ${cfg.steps}: max |param - torch| ${worst.toExponential(2)}; ${unchosen} expert-steps without a token`);
    model.dispose();
  });

  it('skipping unchosen experts (a per-expert optimizer) ends far from torch: the fixture tells the two apart', async () => {
    const { model, losses } = await train(false);
    const worst = await worstParam(model, false);
    console.log(`      without fused sets: max |param - torch| ${worst.toExponential(2)}, last loss ${losses[cfg.steps - 1]!.toFixed(4)} (torch ${ref.get('train:loss').data[cfg.steps - 1]!.toFixed(4)})`);
    expect(worst).to.be.greaterThan(1e-3);
    model.dispose();
  });
});

describe('AdamW fused sets', () => {
  const variable = (v: number[]) => tf.variable(tf.tensor(v, [v.length, 1]));

  it('a set member without a gradient steps with zeros (decay and moments) when another member has one; none steps when no member has', async () => {
    const params = new Map([['a', variable([1, 2])], ['b', variable([3, 4])], ['c', variable([5, 6])]]);
    const opt = new AdamW(params, [{ keys: ['a', 'b', 'c'], weightDecay: 0.5 }], { lr: 0.1, fused: [['a', 'b']] });
    const g = tf.ones([2, 1]);
    const decayed = [3, 4].map((x) => Math.fround(x * Math.fround(1 - 0.1 * 0.5))); // zero moments: decay alone
    opt.step(new Map([['a', g]]));
    expect(Array.from(await params.get('b')!.data())).to.deep.equal(decayed);
    expect(Array.from(await params.get('c')!.data())).to.deep.equal([5, 6]);
    opt.step(new Map([['c', g]]));
    expect(Array.from(await params.get('b')!.data())).to.deep.equal(decayed);
    expect(() => new AdamW(params, [{ keys: ['a', 'b', 'c'], weightDecay: 0 }], { lr: 1, fused: [['a', 'x']] })).to.throw("fused set names 'x'");
    tf.dispose([g, ...params.values()]);
    opt.dispose();
  });
});
