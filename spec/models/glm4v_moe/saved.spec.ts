// MoE checkpoints saved by `glm46v finetune` (full and LoRA on attention and expert projections) load in transformers
// and compute our logits: scripts/parity/check_saved_moe.py made them for moe_a (glm4v_moe) and moe_b (glm46v over the
// MoE backbone), had transformers load them (no missing or unexpected keys, correction bias untouched), checked that
// their layout is what transformers' own save_pretrained writes (per-expert for glm4v_moe, fused for glm46v; router
// weight and correction bias F32 in BF16 saves), and recorded its logits; the checkpoints are committed beside them.
// Replaying the fine-tune checks what finetune writes (files, config text, names, dtypes, shapes), as spec/train/saved.
import { expect } from 'chai';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { command } from '../../../cli/finetune';
import { CheckpointReader } from '../../../lib/checkpoint';
import { compare, referenceInputs } from '../../../cli/parity_runner';
import { loadModel } from '../../../models/glm4v/auto';
import { fixturePath, loadReference } from '../../helpers/fixtures';
import { quiet } from '../../helpers/quiet';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const files = (dir: string) => fs.readdirSync(dir).filter((f) => /^model.*\.safetensors(\.index\.json)?$/.test(f)).sort();

/** What each model's saves must hold: one key of its expert layout, and the keys that stay F32 in a BF16 save. */
const LAYOUT = {
  moe_a: { expertKey: 'model.language_model.layers.1.mlp.experts.0.gate_proj.weight', notKey: 'model.language_model.layers.1.mlp.experts.gate_up_proj' },
  moe_b: { expertKey: 'model.language_model.layers.1.mlp.experts.gate_up_proj', notKey: 'model.language_model.layers.1.mlp.experts.0.gate_proj.weight' },
};

for (const [name, layout] of Object.entries(LAYOUT)) {
  describe(`MoE checkpoints saved by finetune vs transformers loading them (${name}, check_saved_moe.py)`, () => {
    const ref = loadReference(fixturePath('moe', 'saved', `saved_${name}.safetensors`));
    const cases = JSON.parse(ref.metadata.cases!) as Record<string, string[]>;
    const digests = JSON.parse(ref.metadata.weights_sha256!) as Record<string, string>;
    const batch = loadReference(path.join(path.dirname(ref.file), ref.metadata.inputs!));
    const m = ref.get('in:attention_mask');
    const [B, L] = m.shape as [number, number];
    const mask = Array.from({ length: B }, (_, b) => Array.from(m.data.subarray(b * L, (b + 1) * L)));

    for (const [c, argv] of Object.entries(cases)) {
      const saved = fixturePath('moe', 'saved', name, c);

      it(`${c}: our logits on the saved folder are transformers' within 1e-4`, async () => {
        const h = createHash('sha256');
        for (const f of files(saved).filter((f) => f.endsWith('.safetensors'))) h.update(fs.readFileSync(path.join(saved, f)));
        expect(h.digest('hex'), 'the committed weights are the ones transformers loaded').to.equal(digests[c]);
        const model = loadModel(saved);
        const inputs = referenceInputs(batch.tensors);
        const { logits } = model.forward({ ...inputs, labels: undefined });
        const r = compare(`logits:${c}`, await logits.data(), ref.get(`logits:${c}`), 1e-4, 0, mask);
        logits.dispose();
        inputs.pixelValues!.dispose();
        model.dispose();
        console.log(`      max |ours - transformers| ${r.maxAbs.toExponential(2)} (${r.note ?? 'every token'})`);
        expect(r.ok, `max diff ${r.maxAbs}`).to.equal(true);
      });

      it(`${c}: finetune writes that checkpoint's files, config text, names, dtypes and shapes (transformers' layout)`, async () => {
        const out = fs.mkdtempSync(path.join(os.tmpdir(), 'saved-moe-'));
        await quiet(() => command.run(['--model', fixturePath('models', name), '--data', path.join(ROOT, ref.metadata.data!), '--out', out, ...argv]));
        const dir = path.join(out, 'final');
        expect(files(dir)).to.deep.equal(files(saved));
        // text, not parsed JSON: float literals such as routed_scaling_factor 1.0 must stay floats for transformers
        expect(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).to.equal(fs.readFileSync(path.join(saved, 'config.json'), 'utf8'));
        const [ours, theirs] = [new CheckpointReader(dir), new CheckpointReader(saved)];
        try {
          expect(ours.keys().sort()).to.deep.equal(theirs.keys().sort());
          expect(ours.keys()).to.include(layout.expertKey).and.not.include(layout.notKey);
          for (const k of theirs.keys()) expect(ours.info(k), k).to.deep.equal(theirs.info(k));
          const bf16 = argv.includes('BF16');
          const f32 = ours.keys().filter((k) => ours.info(k).dtype === 'F32').sort();
          const router = ours.keys().filter((k) => /\.mlp\.gate\.(weight|e_score_correction_bias)$/.test(k)).sort();
          expect(router.length).to.be.greaterThan(0);
          expect(f32, 'F32 tensors').to.deep.equal(bf16 ? router : ours.keys().sort());
        } finally {
          ours.close();
          theirs.close();
        }
        fs.rmSync(out, { recursive: true, force: true });
      });
    }
  });
}
