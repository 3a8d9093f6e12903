// tie_word_embeddings: lm_head.weight is model.language_model.embed_tokens.weight, one parameter, as transformers ties
// them. References from scripts/parity/cases_tied.py (a tiny glm46v saved tied by transformers, so without
// lm_head.weight) and scripts/parity/check_tied_saved.py (our saved tied checkpoints loaded by transformers).
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { command as finetune } from '../../../cli/finetune';
import { CheckpointReader, loadCheckpoint } from '../../../lib/checkpoint';
import { Json } from '../../../lib/config';
import { compare, referenceInputs } from '../../../cli/parity_runner';
import { HostTensor, readAllSafetensors, WriteTensor, writeSafetensors } from '../../../lib/safetensors';
import { saveCheckpoint } from '../../../lib/save';
import { AdamW, paramGroups } from '../../../train/adamw';
import { clipGradNorm } from '../../../train/clip';
import { applyLora, loraParameters } from '../../../train/lora';
import { microBatchGrads, trainStep } from '../../../train/step';
import { loadModel } from '../../../models/glm4v/auto';
import { parseGlm4vConfig } from '../../../models/glm4v/config';
import { Glm46VForConditionalGeneration, Glm4vForConditionalGeneration } from '../../../models/glm4v/model';
import { isIgnoredKey } from '../../../models/glm4v/weights';
import { expectClose, expectCloseAsync } from '../../helpers/expect_close';
import { fixturePath, loadReference } from '../../helpers/fixtures';
import { expectReferenceParity } from '../../helpers/parity_runner';
import { quiet } from '../../helpers/quiet';

const MODEL = fixturePath('tied', 'model');
const EMBED = 'model.language_model.embed_tokens.weight';
const ROOT = path.resolve(__dirname, '..', '..', '..');
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
const made: string[] = [];
const tmpDir = () => made[made.push(fs.mkdtempSync(path.join(os.tmpdir(), 'tied-'))) - 1]!;
after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const isTied = (m: Glm4vForConditionalGeneration) => m.lmHead.weight.value === m.model.languageModel.embedTokens.weight.value;

/** A copy of the tied model folder with its weights and config rewritten. */
function variant(weights: (t: Map<string, HostTensor>) => Map<string, HostTensor>, config: (c: Record<string, unknown>) => void = () => {}): string {
  const dir = tmpDir();
  const { tensors } = readAllSafetensors(path.join(MODEL, 'model.safetensors'));
  const out = [...weights(tensors)].map(([k, t]) => [k, { dtype: 'F32', shape: t.shape, data: t.data }] as [string, WriteTensor]);
  writeSafetensors(path.join(dir, 'model.safetensors'), out, { format: 'pt' });
  const c = readJson(path.join(MODEL, 'config.json'));
  config(c);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(c));
  return dir;
}

describe('tie_word_embeddings: where the flag is read (as transformers 5.24, config_cases.json)', () => {
  const table = readJson(fixturePath('tied', 'config_cases.json')) as { cases: Array<{ model_type: string; top: boolean | null; text_config: boolean | null; tied: boolean }> };
  const base: Record<string, string> = { glm4v: fixturePath('models', 'tiny_a', 'config.json'), glm46v: fixturePath('models', 'tiny_b', 'config.json') };

  it('ties exactly where transformers does: top level for both, text_config too for glm4v only', () => {
    expect(table.cases).to.have.length(18);
    for (const c of table.cases) {
      const j = readJson(base[c.model_type]!) as Json;
      delete j.tie_word_embeddings;
      if (c.top !== null) j.tie_word_embeddings = c.top;
      if (c.text_config !== null) (j.text_config as Json).tie_word_embeddings = c.text_config;
      const config = parseGlm4vConfig(j);
      const label = `${c.model_type} top=${c.top} text_config=${c.text_config}`;
      expect(config.tie_word_embeddings, label).to.equal(c.tied);
      const m = new Glm4vForConditionalGeneration(config);
      expect([...m.tiedParams()], label).to.deep.equal(c.tied ? [['lm_head.weight', EMBED]] : []);
      expect([...m.namedParams().keys()].includes('lm_head.weight'), label).to.equal(!c.tied);
    }
  });

  it('refuses a flag that is not a boolean', () => {
    const j = { ...readJson(base.glm4v!), tie_word_embeddings: 'yes' };
    expect(() => parseGlm4vConfig(j)).to.throw('config.json: tie_word_embeddings: expected true or false, got "yes"');
  });
});

describe('tied reference (transformers): forward, loss, every gradient, generation', () => {
  it('forward_batch: rope, every stage, logits, loss and every gradient; the shared one once, as embed_tokens', async () => {
    const file = fixturePath('tied', 'forward_batch.safetensors');
    const results = await expectReferenceParity(file);
    const grads = results.filter((r) => r.name.startsWith('grad:')).map((r) => r.name);
    expect(grads).to.include(`grad:${EMBED}`).and.not.include('grad:lm_head.weight');
    expect(grads).to.have.length(new Glm46VForConditionalGeneration(parseGlm4vConfig(readJson(path.join(MODEL, 'config.json')))).namedParams().size);
    expect(results.map((r) => r.name)).to.include.members(['logits', 'loss', 'rope:position_ids', 'out:model.language_model.norm']);
  });

  it('generate: greedy tokens exactly', async () => {
    const results = await expectReferenceParity(fixturePath('tied', 'generate.safetensors'));
    expect(results.map((r) => r.name)).to.deep.equal(['gen:sequences']);
  });
});

describe('a tied model', () => {
  const ref = loadReference(fixturePath('tied', 'forward_batch.safetensors'));
  let model: Glm4vForConditionalGeneration;
  let inputs: ReturnType<typeof referenceInputs>;
  before(() => {
    model = loadModel(MODEL);
    inputs = referenceInputs(ref.tensors);
  });
  after(() => {
    model.dispose();
    inputs.pixelValues!.dispose();
  });

  it('loads without lm_head.weight: one parameter under both keys, named once as embed_tokens, counted once', () => {
    expect(model).to.be.instanceOf(Glm46VForConditionalGeneration);
    expect(isTied(model)).to.equal(true);
    expect([...model.tiedParams()]).to.deep.equal([['lm_head.weight', EMBED]]);
    expect(model.namedParameters().has('lm_head.weight')).to.equal(false);
    expect(model.numParameters()).to.equal(Number(ref.metadata.num_parameters));
  });

  it("the shared gradient is the sum of the embedding's and lm_head's, as the untied model computes them", async () => {
    const vars = model.namedParameters();
    const tied = microBatchGrads(model, inputs, vars, 1);
    const untied = loadModel(MODEL);
    untied.untie('lm_head.weight');
    untied.lmHead.weight.set(untied.model.languageModel.embedTokens.weight.value);
    expect(isTied(untied)).to.equal(false);
    const split = microBatchGrads(untied, inputs, untied.namedParameters(), 1);
    const [gEmbed, gHead] = [split.grads.get(EMBED)!, split.grads.get('lm_head.weight')!];
    const sum = tf.add(gEmbed, gHead);
    const d = await expectCloseAsync(tied.grads.get(EMBED)!, sum, { atol: 1e-6, label: 'tied grad vs embed + lm_head grads' });
    // both parts matter: either alone is far off
    for (const part of [gEmbed, gHead]) {
      const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(sum, part))));
      expect((await gap.data())[0]).to.be.greaterThan(1e-2);
      gap.dispose();
    }
    console.log(`      max |tied - (embed + lm_head)| ${d.maxAbs.toExponential(2)}`);
    tf.dispose([tied.loss, split.loss, sum, ...tied.grads.values(), ...split.grads.values()]);
    untied.dispose();
  });

  it('saves as transformers does: no lm_head.weight, tie_word_embeddings true; reloads tied with identical weights', async () => {
    const dir = path.join(tmpDir(), 'saved');
    await saveCheckpoint(model, dir, { copyFrom: MODEL });
    const reader = new CheckpointReader(dir);
    try {
      expect(reader.keys()).to.include(EMBED).and.not.include('lm_head.weight');
      expect(reader.keys()).to.have.length(model.namedParams().size);
    } finally {
      reader.close();
    }
    expect(readJson(path.join(dir, 'config.json')).tie_word_embeddings).to.equal(true);
    const again = loadModel(dir);
    expect(isTied(again)).to.equal(true);
    for (const [k, v] of model.namedParameters()) expect(Array.from(await again.namedParameters().get(k)!.data()), k).to.deep.equal(Array.from(await v.data()));
    again.dispose();
  });

  it('LoRA: lm_head is refused in one line, embed_tokens is no Linear; other targets train and save tied', async () => {
    const m = loadModel(MODEL);
    expect(() => applyLora(m, { targets: ['q_proj', 'lm_head'], rank: 2, alpha: 4 })).to.throw(
      /^applyLora: target 'lm_head': lm_head\.weight is tied to model\.language_model\.embed_tokens\.weight \(tie_word_embeddings\), and LoRA on a tied weight is not supported: leave 'lm_head' out of the targets$/,
    );
    expect(() => applyLora(m, { targets: ['embed_tokens'], rank: 2, alpha: 4 })).to.throw(/^applyLora: target 'embed_tokens' matches no Linear layer/);
    expect(isTied(m) && !m.lmHead.weight.value.isDisposed).to.equal(true);
    applyLora(m, { targets: ['q_proj', 'v_proj'], rank: 2, alpha: 4, seed: 3 });
    const trainable = loraParameters(m);
    const opt = new AdamW(trainable, paramGroups(trainable, 0), { lr: 0.05 });
    for (let i = 0; i < 2; i++) {
      const { loss, gradNorm } = trainStep(m, [inputs], trainable, opt);
      tf.dispose([loss, gradNorm]);
    }
    opt.dispose();
    const dir = path.join(tmpDir(), 'lora');
    await saveCheckpoint(m, dir, { copyFrom: MODEL });
    const saved = loadModel(dir);
    expect(isTied(saved)).to.equal(true);
    const [a, b] = [m.forward({ ...inputs, labels: undefined }).logits, saved.forward({ ...inputs, labels: undefined }).logits];
    expectClose(await a.data(), await b.data(), { atol: 1e-5, label: 'adapted vs its saved, merged, tied checkpoint' });
    tf.dispose([a, b]);
    saved.dispose();
    m.dispose();
  });
});

describe('a tied model trains as one matrix (train.safetensors: torch.optim.AdamW, 3 steps)', () => {
  const ref = loadReference(fixturePath('tied', 'train.safetensors'));
  const cfg = JSON.parse(ref.metadata.train_config!) as { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number; steps: number };

  it('losses, grad norms and the parameters after the last step equal torch; still tied', async () => {
    const model = loadModel(MODEL);
    const inputs = referenceInputs(loadReference(fixturePath('tied', ref.metadata.inputs!)).tensors);
    const params = model.namedParameters();
    const opt = new AdamW(params, paramGroups(params, cfg.weight_decay), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps });
    for (let k = 0; k < cfg.steps; k++) {
      const { loss, grads } = microBatchGrads(model, inputs, params, 1);
      expect(grads.size).to.equal(params.size);
      const clipped = clipGradNorm(grads, cfg.max_grad_norm);
      opt.step(clipped.grads);
      expectClose([(await loss.data())[0]!], [ref.get('train:loss').data[k]!], { atol: 0, rtol: 1e-4, label: `loss ${k + 1}` });
      expectClose([(await clipped.totalNorm.data())[0]!], [ref.get('train:grad_norm').data[k]!], { atol: 0, rtol: 1e-4, label: `grad norm ${k + 1}` });
      tf.dispose([loss, clipped.totalNorm, ...grads.values(), ...clipped.grads.values()]);
    }
    expect(isTied(model)).to.equal(true);
    const keys = [...ref.tensors.keys()].filter((k) => k.startsWith('param:'));
    expect(keys).to.include(`param:${EMBED}`);
    for (const k of keys) await expectCloseAsync(params.get(k.slice(6))!, ref.get(k), { atol: 1e-4, label: k });
    opt.dispose();
    model.dispose();
    inputs.pixelValues!.dispose();
  });
});

describe('loading a tied config against what the checkpoint holds (as transformers tie_weights)', () => {
  const { tensors } = readAllSafetensors(path.join(MODEL, 'model.safetensors'));
  const embed = tensors.get(EMBED)!;
  const load = (dir: string, warnings: string[]) =>
    loadCheckpoint(new Glm46VForConditionalGeneration(parseGlm4vConfig(readJson(path.join(dir, 'config.json')))), dir, { ignore: isIgnoredKey, warn: (l) => warnings.push(l) });

  it('only lm_head.weight: ties to it', async () => {
    const dir = variant((t) => new Map([...t].map(([k, v]) => [k === EMBED ? 'lm_head.weight' : k, v])));
    const warnings: string[] = [];
    const m = load(dir, warnings);
    expect(isTied(m)).to.equal(true);
    expect(Array.from(await m.lmHead.weight.value.data())).to.deep.equal(Array.from(embed.data));
    expect(warnings).to.deep.equal([]);
    m.dispose();
  });

  it('both, equal: tied, no warning', () => {
    const dir = variant((t) => new Map([...t, ['lm_head.weight', embed]]));
    const warnings: string[] = [];
    const m = load(dir, warnings);
    expect(isTied(m)).to.equal(true);
    expect(warnings).to.deep.equal([]);
    m.dispose();
  });

  it('both, different: untied, each from its own key, with a one-line warning', async () => {
    const head = { ...embed, data: (embed.data as Float32Array).map((x) => 2 * x) };
    const dir = variant((t) => new Map([...t, ['lm_head.weight', head]]));
    const warnings: string[] = [];
    const m = load(dir, warnings);
    expect(isTied(m)).to.equal(false);
    expect(m.namedParameters().has('lm_head.weight')).to.equal(true);
    expect(Array.from(await m.lmHead.weight.value.data())).to.deep.equal(Array.from(head.data));
    expect(Array.from(await m.model.languageModel.embedTokens.weight.value.data())).to.deep.equal(Array.from(embed.data));
    expect(warnings).to.deep.equal([`${dir}: lm_head.weight is tied to ${EMBED} (tie_word_embeddings), but the checkpoint holds both with different values: loading them untied, as transformers does`]);
    m.dispose();
  });

  it('a pre-v5 glm4v config (the flag only in text_config) loads tied and saves it at the top level', async () => {
    const dir = variant((t) => t, (c) => {
      c.model_type = 'glm4v';
      delete c.tie_word_embeddings;
      (c.text_config as Json).tie_word_embeddings = true;
    });
    const m = loadModel(dir);
    expect(m).to.not.be.instanceOf(Glm46VForConditionalGeneration);
    expect(isTied(m)).to.equal(true);
    const out = path.join(tmpDir(), 'saved');
    await saveCheckpoint(m, out, { copyFrom: dir });
    expect(readJson(path.join(out, 'config.json')).tie_word_embeddings).to.equal(true);
    m.dispose();
  });

  it('glm46v with the flag only in text_config is not tied (transformers ignores it there) and says so', () => {
    const dir = variant((t) => t, (c) => {
      delete c.tie_word_embeddings;
      (c.text_config as Json).tie_word_embeddings = true;
    });
    expect(() => loadModel(dir)).to.throw(
      `${dir}: Missing parameters (1): lm_head.weight (config.json has tie_word_embeddings true only in text_config, which glm46v (as transformers) does not read: set it at the top level)`,
    );
  });
});

describe('tied checkpoints saved by finetune vs transformers loading them (check_tied_saved.py)', () => {
  const ref = loadReference(fixturePath('tied', 'saved_logits.safetensors'));
  const cases = JSON.parse(ref.metadata.cases!) as Record<string, string[]>;
  const digests = JSON.parse(ref.metadata.weights_sha256!) as Record<string, string>;
  const batch = loadReference(fixturePath('tied', ref.metadata.inputs!));
  const m = batch.get('in:attention_mask');
  const mask = Array.from({ length: m.shape[0]! }, (_, b) => Array.from(m.data.subarray(b * m.shape[1]!, (b + 1) * m.shape[1]!)));
  const weightFiles = (dir: string) => fs.readdirSync(dir).filter((f) => /^model.*\.safetensors(\.index\.json)?$/.test(f)).sort();

  for (const [name, argv] of Object.entries(cases)) {
    const saved = fixturePath('tied', 'saved', name);

    it(`${name}: our logits on the saved folder are transformers' within 1e-4`, async () => {
      const h = createHash('sha256');
      for (const f of weightFiles(saved).filter((f) => f.endsWith('.safetensors'))) h.update(fs.readFileSync(path.join(saved, f)));
      expect(h.digest('hex'), 'the committed weights are the ones transformers loaded').to.equal(digests[name]);
      const m = loadModel(saved);
      expect(isTied(m)).to.equal(true);
      const inputs = referenceInputs(batch.tensors);
      const { logits } = m.forward({ ...inputs, labels: undefined });
      const c = compare(`logits:${name}`, await logits.data(), ref.get(`logits:${name}`), 1e-4, 0, mask);
      tf.dispose([logits, inputs.pixelValues!]);
      m.dispose();
      console.log(`      max |ours - transformers| ${c.maxAbs.toExponential(2)} (${c.note})`);
      expect(c.ok, `max diff ${c.maxAbs}`).to.equal(true);
    });

    it(`${name}: finetune writes that checkpoint's files, config and keys (no lm_head.weight)`, async () => {
      const out = path.join(tmpDir(), 'run');
      await quiet(() => finetune.run(['--model', MODEL, '--data', path.join(ROOT, ref.metadata.data!), '--out', out, ...argv]));
      const dir = path.join(out, 'final');
      expect(weightFiles(dir)).to.deep.equal(weightFiles(saved));
      const config = readJson(path.join(dir, 'config.json'));
      expect(config.tie_word_embeddings).to.equal(true);
      expect(config).to.deep.equal(readJson(path.join(saved, 'config.json')));
      const [ours, theirs] = [new CheckpointReader(dir), new CheckpointReader(saved)];
      try {
        expect(ours.keys().sort()).to.deep.equal(theirs.keys().sort());
        expect(ours.keys()).to.not.include('lm_head.weight');
        for (const k of theirs.keys()) expect(ours.info(k), k).to.deep.equal(theirs.info(k));
      } finally {
        ours.close();
        theirs.close();
      }
    });
  }
});
