// Saving the MoE models in the layout transformers 5.24 writes for each (lib/save.ts's SavesOwnTensors hook, from
// models/glm4v_moe/moe.ts): glm4v_moe per expert, glm46v + glm4v_moe_text fused; the router weight and the correction
// bias F32 in a BF16 save. The tiny models' files were written by transformers' save_pretrained (tiny_moe.py), so an
// F32 save of the loaded model must give back the same tensors bit for bit.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CheckpointReader } from '../../../lib/checkpoint';
import { saveCheckpoint } from '../../../lib/save';
import { readAllSafetensors } from '../../../lib/safetensors';
import { loadModel } from '../../../models/glm4v/auto';
import { fixturePath } from '../../helpers/fixtures';

async function saved(name: string, dtype: 'F32' | 'BF16') {
  const src = fixturePath('models', name), out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'moe-save-')), 'ckpt');
  const model = loadModel(src);
  try {
    await saveCheckpoint(model, out, { dtype, copyFrom: src });
  } finally {
    model.dispose();
  }
  const theirs = readAllSafetensors(path.join(src, 'model.safetensors')).tensors;
  const ours = readAllSafetensors(path.join(out, 'model.safetensors')).tensors;
  const reader = new CheckpointReader(out);
  const dtypes = new Map(reader.keys().map((k) => [k, reader.info(k).dtype]));
  reader.close();
  fs.rmSync(path.dirname(out), { recursive: true, force: true });
  return { theirs, ours, dtypes };
}

const ROUTER = /\.mlp\.gate\.(weight|e_score_correction_bias)$/;

describe('glm4v_moe saving: the layout transformers writes for each model type', () => {
  for (const [name, key] of [['moe_a', 'layers.1.mlp.experts.0.gate_proj.weight'], ['moe_b', 'layers.1.mlp.experts.gate_up_proj']] as const) {
    it(`${name}: an F32 save holds transformers' keys (${key.replace(/^layers\.1\.mlp\./, '')}), shapes and values bit for bit`, async () => {
      const { theirs, ours, dtypes } = await saved(name, 'F32');
      expect(new Set(dtypes.values())).to.deep.equal(new Set(['F32']));
      expect([...ours.keys()].sort()).to.deep.equal([...theirs.keys()].sort());
      expect(ours.has(`model.language_model.${key}`)).to.equal(true);
      for (const [k, t] of theirs) {
        const o = ours.get(k)!;
        expect(o.shape, k).to.deep.equal(t.shape);
        expect(Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength).equals(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), k).to.equal(true);
      }
    });
  }

  it('moe_b in BF16: the router weight and correction bias stay F32 and exact (_keep_in_fp32_modules_strict), the rest BF16', async () => {
    const { theirs, ours, dtypes } = await saved('moe_b', 'BF16');
    const router = [...ours.keys()].filter((k) => ROUTER.test(k));
    expect(router).to.have.length(2);
    for (const [k, o] of ours) {
      expect(dtypes.get(k), k).to.equal(ROUTER.test(k) ? 'F32' : 'BF16');
      if (ROUTER.test(k)) expect(Array.from(o.data), k).to.deep.equal(Array.from(theirs.get(k)!.data));
    }
  });
});
