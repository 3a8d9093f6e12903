// Checkpoints saved by `glm46v finetune` load in Python transformers and compute our logits. The fixture holds
// transformers' logits for the checkpoints that scripts/parity/check_saved.py made with the finetune arguments it
// records; those checkpoints are committed beside it (train/saved/, sha256 as recorded), so the logits comparison is
// a forward pass on fixed weights and holds on every backend at 1e-4. Replaying the fine-tune gives other weights on
// another backend (four AdamW steps amplify float32 rounding), so the replay checks what finetune writes: the same
// files, config, tensor names, dtypes and shapes. Rerun: /work/pyref/bin/python scripts/parity/check_saved.py
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { command } from '../../cli/finetune';
import { CheckpointReader } from '../../lib/checkpoint';
import { compare, referenceInputs } from '../../cli/parity_runner';
import { loadModel } from '../../models/glm4v/auto';
import { fixturePath, loadReference } from '../helpers/fixtures';
import { quiet } from '../helpers/quiet';

const ref = loadReference(fixturePath('train', 'saved_tiny_a.safetensors'));
const cases = JSON.parse(ref.metadata.cases!) as Record<string, string[]>;
const digests = JSON.parse(ref.metadata.weights_sha256!) as Record<string, string>;
const ROOT = path.resolve(__dirname, '..', '..');

describe('checkpoints saved by finetune vs transformers loading them (check_saved.py)', () => {
  const batch = loadReference(fixturePath('model', 'tiny_a_batch.safetensors'));
  const mask = (() => {
    const m = ref.get('in:attention_mask');
    const [B, L] = m.shape as [number, number];
    return Array.from({ length: B }, (_, b) => Array.from(m.data.subarray(b * L, (b + 1) * L)));
  })();
  const modelFiles = (dir: string) => fs.readdirSync(dir).filter((f) => /^model.*\.safetensors(\.index\.json)?$/.test(f)).sort();

  for (const [name, argv] of Object.entries(cases)) {
    const saved = fixturePath('train', 'saved', name);

    it(`${name}: our logits on the saved folder are transformers' within 1e-4`, async () => {
      const h = createHash('sha256');
      for (const f of modelFiles(saved).filter((f) => f.endsWith('.safetensors'))) h.update(fs.readFileSync(path.join(saved, f)));
      expect(h.digest('hex'), 'the committed weights are the ones transformers loaded').to.equal(digests[name]);
      const m = loadModel(saved);
      const inputs = referenceInputs(batch.tensors);
      const { logits } = m.forward({ ...inputs, labels: undefined });
      const c = compare(`logits:${name}`, await logits.data(), ref.get(`logits:${name}`), 1e-4, 0, mask);
      logits.dispose();
      inputs.pixelValues!.dispose();
      m.dispose();
      console.log(`      max |ours - transformers| ${c.maxAbs.toExponential(2)} (${c.note})`);
      expect(c.ok, `max diff ${c.maxAbs}`).to.equal(true);
    });

    it(`${name}: finetune writes that checkpoint's files, config, names, dtypes and shapes`, async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'saved-'));
      await quiet(() => command.run(['--model', fixturePath('models', 'tiny_a'), '--data', path.join(ROOT, ref.metadata.data!), '--out', out, ...argv]));
      const dir = path.join(out, 'final');
      expect(modelFiles(dir)).to.deep.equal(modelFiles(saved));
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'))).to.deep.equal(JSON.parse(fs.readFileSync(path.join(saved, 'config.json'), 'utf8')));
      const [ours, theirs] = [new CheckpointReader(dir), new CheckpointReader(saved)];
      try {
        expect(ours.keys().sort()).to.deep.equal(theirs.keys().sort());
        for (const k of theirs.keys()) expect(ours.info(k), k).to.deep.equal(theirs.info(k));
      } finally {
        ours.close();
        theirs.close();
      }
      fs.rmSync(out, { recursive: true, force: true });
    });
  }
});
