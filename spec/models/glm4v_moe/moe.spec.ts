// glm4v_moe pieces that the reference files do not pin down alone: config defaults and errors, the router's choice
// on hand-worked scores, strict loading of both expert layouts, the correction bias as a buffer, and memory.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { referenceInputs } from '../../../cli/parity_runner';
import { HostTensor, WriteTensor, readAllSafetensors, writeSafetensors } from '../../../lib/safetensors';
import { loadModel } from '../../../models/glm4v/auto';
import { Glm46VForConditionalGeneration } from '../../../models/glm4v/model';
import { parseGlm4vMoeConfig, parseGlm4vMoeTextConfig } from '../../../models/glm4v_moe/config';
import { Glm4vMoeForConditionalGeneration } from '../../../models/glm4v_moe/model';
import { checkMoeBackend, selectExperts } from '../../../models/glm4v_moe/moe';
import { Glm4vMoeTextModel } from '../../../models/glm4v_moe/text';
import { fixturePath, loadReference } from '../../helpers/fixtures';

const MOE_A = fixturePath('models', 'moe_a');

/** A copy of a model folder with its weights replaced by `edit(tensors)`. */
function editedCopy(src: string, edit: (t: Map<string, HostTensor>) => Map<string, HostTensor>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-spec-'));
  fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  const tensors = edit(readAllSafetensors(path.join(src, 'model.safetensors')).tensors);
  const w = (h: HostTensor): WriteTensor => ({ dtype: 'F32', shape: h.shape, data: h.data as Float32Array });
  writeSafetensors(path.join(dir, 'model.safetensors'), [...tensors].map(([k, h]) => [k, w(h)] as [string, WriteTensor]), { format: 'pt' });
  return dir;
}

describe('Glm4vMoeTextConfig', () => {
  const tiny = { hidden_size: 32, num_attention_heads: 4, num_key_value_heads: 2, n_routed_experts: 8, n_group: 4, topk_group: 2, num_experts_per_tok: 2, rope_parameters: { mrope_section: [1, 1, 0] } };

  it('defaults partial_rotary_factor to 0.5 (glm4v_text defaults to 1) and head_dim to hidden/heads', () => {
    const c = parseGlm4vMoeTextConfig(tiny);
    expect([c.rope_parameters.partial_rotary_factor, c.headDim, c.rotaryDim, c.attention_bias, c.first_k_dense_replace]).to.deep.equal([0.5, 8, 4, true, 1]);
    const d = parseGlm4vMoeTextConfig({ ...tiny, head_dim: 12, rope_parameters: { mrope_section: [1, 1, 1] } });
    expect([d.headDim, d.rotaryDim]).to.deep.equal([12, 6]);
    expect(parseGlm4vMoeTextConfig({ ...tiny, n_routed_experts: undefined, num_local_experts: 8 }).n_routed_experts).to.equal(8);
  });

  it('names the offending key in one line', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ n_group: 3 }, /^text_config\.n_routed_experts: 8 is not divisible by n_group 3$/],
      [{ n_group: 8, topk_group: 2 }, /^text_config\.n_group: 8 groups of 1 expert; .* at least 2$/],
      [{ topk_group: 5 }, /^text_config\.topk_group: 5 is more than n_group 4$/],
      [{ num_experts_per_tok: 5 }, /^text_config\.num_experts_per_tok: 5 is more than the 4 experts of topk_group 2 groups$/],
      [{ output_router_logits: true }, /^text_config\.output_router_logits: the auxiliary load-balancing loss is not implemented/],
      [{ model_type: 'glm4v_text' }, /^text_config\.model_type: expected 'glm4v_moe_text', got 'glm4v_text'$/],
      [{ rope_parameters: { mrope_section: [2, 2, 2] } }, /^text_config\.rope_parameters\.mrope_section: \[2,2,2\] sums to 6 but rotary dim\/2 is 2/],
    ];
    for (const [patch, re] of bad) expect(() => parseGlm4vMoeTextConfig({ ...tiny, ...patch })).to.throw(re);
  });

  it('takes glm46v token defaults for a glm46v config and glm4v_moe ones otherwise', () => {
    expect(parseGlm4vMoeConfig({ model_type: 'glm4v_moe', text_config: tiny }).image_token_id).to.equal(151363);
    const c = parseGlm4vMoeConfig({ model_type: 'glm46v', text_config: { ...tiny, model_type: 'glm4v_moe_text' } });
    expect([c.image_token_id, c.video_start_token_id]).to.deep.equal([151343, 151361]);
  });
});

describe('selectExperts', () => {
  // groups of 2: g0 0.9+0.1=1.0, g1 0.6+0.5=1.1, g2 0.5, g3 0.8+0.05=0.85
  const row = Float32Array.from([0.9, 0.1, 0.5, 0.6, 0.2, 0.3, 0.8, 0.05]);

  it('chooses inside the best topk_group groups only (expert 6 scores 0.8 but its group is third)', () => {
    expect([...selectExperts(row, { numExperts: 8, topK: 2, nGroup: 4, topkGroup: 2 })]).to.deep.equal([0, 3]);
  });

  it('is a plain top-k with one group, row by row', () => {
    const two = Float32Array.from([...row, ...row.map((x) => 1 - x)]);
    expect([...selectExperts(two, { numExperts: 8, topK: 3, nGroup: 1, topkGroup: 1 })]).to.deep.equal([0, 6, 3, 7, 1, 4]);
  });
});

describe('glm4v_moe loading', () => {
  it('builds Glm4vMoeForConditionalGeneration for glm4v_moe and Glm46V over the MoE text model for glm46v', () => {
    const a = loadModel(MOE_A), b = loadModel(fixturePath('models', 'moe_b'));
    expect(a).to.be.instanceOf(Glm4vMoeForConditionalGeneration);
    expect(b).to.be.instanceOf(Glm46VForConditionalGeneration);
    expect(b.model.languageModel as unknown).to.be.instanceOf(Glm4vMoeTextModel);
    expect([...a.namedParameters().keys()]).to.include('model.language_model.layers.2.mlp.experts.7.down_proj.weight');
    a.dispose();
    b.dispose();
  });

  it('reads transformers fused experts (gate_up_proj [E, 2I, H], down_proj [E, H, I]) as the per-expert weights', () => {
    const fused = editedCopy(MOE_A, (t) => {
      const out = new Map([...t].filter(([k]) => !/\.experts\.\d+\./.test(k)));
      for (const layer of [1, 2]) {
        const p = `model.language_model.layers.${layer}.mlp.experts`;
        const cat = (keys: string[]) => Float32Array.from(keys.flatMap((k) => Array.from(t.get(k)!.data)));
        const E = 8, I = 16, H = 48;
        const gateUp = cat(Array.from({ length: E }, (_, e) => [`${p}.${e}.gate_proj.weight`, `${p}.${e}.up_proj.weight`]).flat());
        out.set(`${p}.gate_up_proj`, { dtype: 'float32', shape: [E, 2 * I, H], data: gateUp });
        out.set(`${p}.down_proj`, { dtype: 'float32', shape: [E, H, I], data: cat(Array.from({ length: E }, (_, e) => `${p}.${e}.down_proj.weight`)) });
      }
      return out;
    });
    const [a, b] = [loadModel(MOE_A), loadModel(fused)];
    const pb = b.namedParameters();
    for (const [k, v] of a.namedParameters()) expect(tf.tidy(() => tf.max(tf.abs(tf.sub(v, pb.get(k)!))).dataSync()[0]), k).to.equal(0);
    a.dispose();
    b.dispose();
  });

  it('reports missing and unexpected keys, and skips the next-token-prediction layer (layers.46)', () => {
    const drop = editedCopy(MOE_A, (t) => {
      t.delete('model.language_model.layers.1.mlp.experts.3.up_proj.weight');
      t.set('model.language_model.layers.1.mlp.experts.8.up_proj.weight', t.get('model.language_model.layers.1.mlp.experts.0.up_proj.weight')!);
      return t;
    });
    expect(() => loadModel(drop)).to.throw(/Missing parameters \(1\): model\.language_model\.layers\.1\.mlp\.experts\.3\.up_proj\.weight; Received parameters not in model \(1\): model\.language_model\.layers\.1\.mlp\.experts\.8\.up_proj\.weight/);
    const mtp = editedCopy(MOE_A, (t) => t.set('model.language_model.layers.46.eh_proj.weight', t.get('model.language_model.norm.weight')!));
    loadModel(mtp).dispose();
  });
});

describe('Glm4vMoeForConditionalGeneration training pieces', () => {
  const ref = loadReference(fixturePath('moe', 'moe_a_image.safetensors'));

  it('keeps e_score_correction_bias out of the gradients (a buffer) and leaks no tensor over forward and backward', () => {
    const model = loadModel(ref.modelDir);
    const inputs = referenceInputs(ref.tensors);
    const vars = [...model.namedParameters()];
    expect(vars.filter(([, v]) => !v.trainable).map(([k]) => k)).to.deep.equal([
      'model.language_model.layers.1.mlp.gate.e_score_correction_bias', 'model.language_model.layers.2.mlp.gate.e_score_correction_bias',
    ]);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => model.forward(inputs).loss!, vars.map(([, v]) => v));
      const keyOf = new Map(vars.map(([k, v]) => [v.name, k]));
      // tfjs names a non-trainable variable of varList with a null gradient
      const names = Object.keys(grads).filter((n) => grads[n]).map((n) => keyOf.get(n)!);
      tf.dispose([value, ...Object.values(grads).filter((g) => g)]);
      return names;
    };
    const names = step();
    expect(names.some((n) => n.includes('e_score_correction_bias'))).to.equal(false);
    expect(names.some((n) => n.includes('mlp.gate.weight'))).to.equal(true);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).to.equal(before);
    inputs.pixelValues!.dispose();
    model.dispose();
  });
});

describe('glm4v_moe on webgpu', () => {
  it('is refused in one line naming the backend and what to use instead; the other backends run it', () => {
    expect(() => checkMoeBackend('webgpu')).to.throw(/^glm4v_moe: the webgpu backend cannot run .*; use GLM46V_BACKEND=tensorflow or wasm$/);
    for (const b of ['tensorflow', 'wasm', 'cpu']) expect(() => checkMoeBackend(b), b).to.not.throw();
  });

  it('loadModel refuses on webgpu before reading weights, and loads on the active backend otherwise', () => {
    if (tf.getBackend() === 'webgpu') expect(() => loadModel(MOE_A)).to.throw('the webgpu backend cannot run Mixture-of-Experts models');
    else loadModel(MOE_A).dispose();
  });
});
