import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { PNG } from 'pngjs';
import { ChatDataset } from '../../train/data';
import { listCheckpoints } from '../../train/resume';
import { prepareTrainable, Progress, train, TrainOptions } from '../../train/trainer';
import { loadModel } from '../../models/glm4v/auto';
import { fixturePath } from '../helpers/fixtures';

const TINY_A = fixturePath('models', 'tiny_a');
const ds = ChatDataset.fromPretrained(TINY_A);
const trainData = ds.load(fixturePath('train', 'data', 'train.jsonl'));
const evalData = ds.load(fixturePath('train', 'data', 'eval.jsonl'));
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'trainer-'));
const bytesOf = (file: string) => fs.readFileSync(file);

async function run(opts: Partial<TrainOptions> & { outDir: string }) {
  const model = loadModel(TINY_A);
  try {
    const progress: Progress[] = [];
    const result = await train(model, ds, trainData, evalData, {
      modelDir: TINY_A, batchSize: 2, lr: 3e-3, weightDecay: 0.1, warmupSteps: 2, maxGradNorm: 1, seed: 5,
      onProgress: (p) => progress.push(p), ...opts,
    });
    return { result, progress };
  } finally {
    model.dispose();
  }
}

const logLines = (dir: string) => fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('train (the fine-tuning loop)', () => {
  it('full fine-tune: loss goes down, log + plot + final HF checkpoint; frozen vision and embeddings stay put', async () => {
    const out = tmpDir();
    const { result, progress } = await run({ outDir: out, steps: 8, gradAccum: 2, freezeVision: true, freezeEmbeddings: true, evalEvery: 4 });
    expect(result.steps).to.equal(8);
    expect(result.savedDir).to.equal(path.join(out, 'final'));
    expect(progress.map((p) => p.step)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(progress[0]!.lr).to.equal(0); // warmup starts at 0, as transformers'
    expect(progress[1]!.lr).to.be.closeTo(1.5e-3, 1e-12);
    expect(progress[7]!.loss).to.be.lessThan(progress[0]!.loss - 1);
    expect(progress[7]!.etaSec).to.equal(0);
    expect(progress.every((p) => p.tokensPerSec > 0 && Number.isFinite(p.gradNorm))).to.equal(true);
    expect(progress.filter((p) => p.evalLoss !== undefined).map((p) => p.step)).to.deep.equal([4, 8]);
    const log = logLines(out);
    expect(log.filter((l) => 'loss' in l)).to.have.length(8);
    expect(log.filter((l) => 'eval_loss' in l).map((l) => l.step)).to.deep.equal([4, 8]);
    expect(Object.keys(log[0])).to.include.members(['step', 'loss', 'lr', 'grad_norm', 'tokens', 'tokens_per_sec', 'elapsed_s']);
    const png = PNG.sync.read(bytesOf(path.join(out, 'loss.png')));
    expect([png.width, png.height]).to.deep.equal([640, 400]);
    const colours = new Set<string>();
    for (let i = 0; i < png.data.length; i += 4) colours.add(`${png.data[i]},${png.data[i + 1]},${png.data[i + 2]}`);
    expect(colours.has('31,119,180') && colours.has('255,127,14')).to.equal(true); // train and eval curves
    const base = loadModel(TINY_A), tuned = loadModel(result.savedDir!);
    const [bp, tp] = [base.namedParameters(), tuned.namedParameters()];
    const bytes = async (v: tf.Tensor) => {
      const a = await v.data();
      return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    };
    for (const k of bp.keys()) {
      const same = (await bytes(bp.get(k)!)).equals(await bytes(tp.get(k)!));
      expect(same, k).to.equal(k.startsWith('model.visual.') || k === 'model.language_model.embed_tokens.weight');
    }
    base.dispose();
    tuned.dispose();
  });

  it('trainVisionKeys: under freezeVision the named vision weights train, the rest of the tower does not', () => {
    const model = loadModel(TINY_A);
    try {
      const all = [...model.namedParameters().keys()];
      const keys = [...prepareTrainable(model, { freezeVision: true, trainVisionKeys: ['position_embedding'] }).keys()];
      expect(keys.filter((k) => k.startsWith('model.visual.'))).to.deep.equal(['model.visual.embeddings.position_embedding.weight']);
      expect(keys.filter((k) => !k.startsWith('model.visual.'))).to.deep.equal(all.filter((k) => !k.startsWith('model.visual.')));
      expect(() => prepareTrainable(model, { trainVisionKeys: ['position_embedding'] })).to.throw('trainVisionKeys needs freezeVision');
    } finally {
      model.dispose();
    }
  });

  it('a curriculum: the first steps draw from their own data, then the run continues as a plain one under the same schedule', async () => {
    const plain = tmpDir(), staged = tmpDir();
    await run({ outDir: plain, steps: 6 });
    await run({ outDir: staged, steps: 9, first: { data: evalData, steps: 3 } });
    const [p, s] = [plain, staged].map((d) => logLines(d).filter((l) => 'loss' in l));
    expect(s).to.have.length(9);
    const pairTokens = ds.collate(evalData.examples).numTokens; // batch size 2: each first-stage batch is the pair
    expect(s.slice(0, 3).map((l) => l.tokens)).to.deep.equal([pairTokens, pairTokens, pairTokens]);
    expect(s.slice(3).map((l) => l.tokens)).to.deep.equal(p.map((l) => l.tokens)); // the main data from its epoch 0
    const lr = (i: number) => (i < 2 ? 3e-3 * i / 2 : 3e-3 * 0.5 * (1 + Math.cos(Math.PI * (i - 2) / 7))); // warmup 2 of 9
    s.forEach((l, i) => expect(l.lr, `lr of step ${i + 1}`).to.be.closeTo(lr(i), 1e-15));
  });

  for (const variant of ['full', 'lora', 'curriculum'] as const) {
    it(`${variant}: a run killed after step 4 (last checkpoint 3) and resumed ends with the same weights and log as an uninterrupted run`, async () => {
      const opts: Partial<TrainOptions> = {
        steps: 6, gradAccum: 2, saveEvery: 3, evalEvery: 2,
        ...(variant === 'lora' ? { lora: { rank: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj', 'gate_up_proj'] }, lr: 2e-2 } : {}),
        ...(variant === 'curriculum' ? { first: { data: { ...trainData, examples: trainData.examples.slice(0, 3) }, steps: 5 } } : {}),
      };
      const whole = tmpDir(), parts = tmpDir();
      await run({ ...opts, outDir: whole });
      // killed during step 5: checkpoint-3 is on disk, step 4 is in the log but in no checkpoint
      const first = await run({ ...opts, outDir: parts, stopAfter: 4 });
      expect(first.result.savedDir).to.equal(undefined);
      expect(listCheckpoints(parts)).to.deep.equal([3, 4]);
      fs.rmSync(path.join(parts, 'checkpoint-4'), { recursive: true });
      expect(logLines(parts).filter((l) => 'loss' in l).map((l) => l.step)).to.deep.equal([1, 2, 3, 4]);
      const second = await run({ ...opts, outDir: parts, resume: true });
      expect(second.progress.map((p) => p.step)).to.deep.equal([4, 5, 6]);
      const [a, b] = [bytesOf(path.join(whole, 'final', 'model.safetensors')), bytesOf(path.join(parts, 'final', 'model.safetensors'))];
      expect(a.equals(b), 'final weights bit-identical').to.equal(true);
      const strip = (l: Record<string, unknown>) => ({ step: l.step, loss: l.loss, eval_loss: l.eval_loss, grad_norm: l.grad_norm, lr: l.lr });
      expect(logLines(parts).map(strip)).to.deep.equal(logLines(whole).map(strip));
    });
  }

  it('refuses to resume with different options, naming the option', async () => {
    const out = tmpDir();
    await run({ outDir: out, steps: 4, saveEvery: 2, stopAfter: 2 });
    let err: Error | undefined;
    await run({ outDir: out, steps: 4, saveEvery: 2, resume: true, lr: 1e-3 }).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/cannot resume with lr=0\.001; the run was started with lr=0\.003/);
  });

  it('tf.memory().numTensors does not grow across 100 steps (with evaluation)', async () => {
    const textOnly = { ...trainData, examples: trainData.examples.filter((e) => e.images.length === 0) };
    const model = loadModel(TINY_A);
    const counts: number[] = [];
    await train(model, ds, textOnly, { ...evalData, examples: evalData.examples.slice(1) }, {
      outDir: tmpDir(), modelDir: TINY_A, steps: 100, batchSize: 1, lr: 1e-3, maxGradNorm: 1, evalEvery: 25,
      onProgress: () => counts.push(tf.memory().numTensors),
    });
    model.dispose();
    expect(counts).to.have.length(100);
    expect(counts[99]).to.equal(counts[1]);
    expect(new Set(counts.slice(1)).size).to.equal(1);
  });
});
