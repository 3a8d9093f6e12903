// Checkpoints saved by `glm46v finetune` load in Python transformers and compute our logits: the fixture holds
// transformers' logits for the checkpoints that scripts/parity/check_saved.py made with the finetune arguments it
// records; this replays those arguments and compares. Rerun: /work/pyref/bin/python scripts/parity/check_saved.py
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { command } from '../../../cli/finetune';
import { compare, referenceInputs } from '../../../lib/parity';
import { loadModel } from '../../../models/glm4v/auto';
import { fixturePath, loadReference } from '../../helpers/fixtures';

const ref = loadReference(fixturePath('train', 'saved_tiny_a.safetensors'));
const cases = JSON.parse(ref.metadata.cases!) as Record<string, string[]>;
const digests = JSON.parse(ref.metadata.weights_sha256!) as Record<string, string>;
const ROOT = path.resolve(__dirname, '..', '..', '..');

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

describe('checkpoints saved by finetune vs transformers loading them (check_saved.py)', () => {
  const batch = loadReference(fixturePath('model', 'tiny_a_batch.safetensors'));
  const mask = (() => {
    const m = ref.get('in:attention_mask');
    const [B, L] = m.shape as [number, number];
    return Array.from({ length: B }, (_, b) => Array.from(m.data.subarray(b * L, (b + 1) * L)));
  })();

  for (const [name, argv] of Object.entries(cases)) {
    it(`${name}: our logits on the saved folder are transformers' within 1e-4`, async () => {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'saved-'));
      await quiet(() => command.run(['--model', fixturePath('models', 'tiny_a'), '--data', path.join(ROOT, ref.metadata.data!), '--out', out, ...argv]));
      const dir = path.join(out, 'final');
      const h = createHash('sha256');
      for (const f of fs.readdirSync(dir).filter((f) => /^model.*\.safetensors$/.test(f)).sort()) h.update(fs.readFileSync(path.join(dir, f)));
      const sameBytes = h.digest('hex') === digests[name];
      const m = loadModel(dir);
      const inputs = referenceInputs(batch.tensors);
      const { logits } = m.forward({ ...inputs, labels: undefined });
      const c = compare(`logits:${name}`, await logits.data(), ref.get(`logits:${name}`), 1e-4, 0, mask);
      logits.dispose();
      inputs.pixelValues!.dispose();
      m.dispose();
      console.log(`      max |ours - transformers| ${c.maxAbs.toExponential(2)} (${c.note}); weights ${sameBytes ? 'identical to' : 'differ from'} the ones transformers loaded`);
      expect(c.ok, `max diff ${c.maxAbs}`).to.equal(true);
    });
  }
});
