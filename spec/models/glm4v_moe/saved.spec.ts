// MoE checkpoints saved by `glm46v finetune` (full and LoRA on attention and expert projections) load in transformers
// and compute our logits: scripts/parity/check_saved_moe.py made them, had transformers load them (no missing or
// unexpected keys, correction bias untouched) and recorded its logits; the checkpoints are committed beside them.
// Replaying the fine-tune checks what finetune writes (files, config, names, dtypes, shapes), as spec/lib/train/saved.
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { command } from '../../../cli/finetune';
import { CheckpointReader } from '../../../lib/checkpoint';
import { compare, referenceInputs } from '../../../lib/parity';
import { loadModel } from '../../../models/glm4v/auto';
import { fixturePath, loadReference } from '../../helpers/fixtures';

const ref = loadReference(fixturePath('moe', 'saved', 'saved_moe_a.safetensors'));
const cases = JSON.parse(ref.metadata.cases!) as Record<string, string[]>;
const digests = JSON.parse(ref.metadata.weights_sha256!) as Record<string, string>;
const ROOT = path.resolve(__dirname, '..', '..', '..');
const files = (dir: string) => fs.readdirSync(dir).filter((f) => /^model.*\.safetensors(\.index\.json)?$/.test(f)).sort();

async function quiet<T>(fn: () => Promise<T>): Promise<T> {
  const [w1, w2] = [process.stdout.write, process.stderr.write];
  process.stdout.write = process.stderr.write = (() => true) as typeof process.stdout.write;
  try {
    return await fn();
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

describe('MoE checkpoints saved by finetune vs transformers loading them (check_saved_moe.py)', () => {
  const batch = loadReference(fixturePath('moe', 'moe_a_batch.safetensors'));
  const m = ref.get('in:attention_mask');
  const [B, L] = m.shape as [number, number];
  const mask = Array.from({ length: B }, (_, b) => Array.from(m.data.subarray(b * L, (b + 1) * L)));

  for (const [name, argv] of Object.entries(cases)) {
    const saved = fixturePath('moe', 'saved', name);

    it(`${name}: our logits on the saved folder are transformers' within 1e-4`, async () => {
      const h = createHash('sha256');
      for (const f of files(saved).filter((f) => f.endsWith('.safetensors'))) h.update(fs.readFileSync(path.join(saved, f)));
      expect(h.digest('hex'), 'the committed weights are the ones transformers loaded').to.equal(digests[name]);
      const model = loadModel(saved);
      const inputs = referenceInputs(batch.tensors);
      const { logits } = model.forward({ ...inputs, labels: undefined });
      const c = compare(`logits:${name}`, await logits.data(), ref.get(`logits:${name}`), 1e-4, 0, mask);
      logits.dispose();
      inputs.pixelValues!.dispose();
      model.dispose();
      console.log(`      max |ours - transformers| ${c.maxAbs.toExponential(2)} (${c.note})`);
      expect(c.ok, `max diff ${c.maxAbs}`).to.equal(true);
    });

    it(`${name}: finetune writes that checkpoint's files, config, names, dtypes and shapes (per-expert layout)`, async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'saved-moe-'));
      await quiet(() => command.run(['--model', fixturePath('models', 'moe_a'), '--data', path.join(ROOT, ref.metadata.data!), '--out', out, ...argv]));
      const dir = path.join(out, 'final');
      expect(files(dir)).to.deep.equal(files(saved));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).to.deep.equal(JSON.parse(fs.readFileSync(path.join(saved, 'config.json'), 'utf8')));
      const [ours, theirs] = [new CheckpointReader(dir), new CheckpointReader(saved)];
      try {
        expect(ours.keys().sort()).to.deep.equal(theirs.keys().sort());
        expect(ours.keys()).to.include('model.language_model.layers.1.mlp.experts.0.gate_proj.weight');
        for (const k of theirs.keys()) expect(ours.info(k), k).to.deep.equal(theirs.info(k));
      } finally {
        ours.close();
        theirs.close();
      }
      fs.rmSync(out, { recursive: true, force: true });
    });
  }
});
