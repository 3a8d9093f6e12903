// Port of transformers/models/glm4v/modeling_glm4v.py (Glm4vText*): the GLM-4 text decoder of GLM-4.1V / GLM-4.6V.
// Names match the checkpoint (model.language_model.*); classes in the order of modeling_glm4v.py.
import * as tf from '@tensorflow/tfjs';
import { loadCheckpoint } from '../../lib/checkpoint';
import { KVCache, TextCache } from '../../lib/kv_cache';
import { Module, ModuleList } from '../../lib/module';
import { Embedding } from '../../layers/embedding';
import { callLayer } from '../../layers/grad_checkpoint';
import { Linear } from '../../layers/linear';
import { RMSNorm } from '../../layers/norms';
import { siluMul } from '../../layers/ops/activations';
import { cachedAttention, scaledDotProductAttention } from '../../layers/ops/attention';
import { causalMask, unpaddedCausalMask } from '../../layers/ops/causal_mask';
import { applyRotaryPosEmb, mropeCosSin, ropeInvFreq, rotaryTables } from '../../layers/ops/rotary';
import { applyRotation, interleavedRotation } from '../../layers/ops/rotation';
import { qkvHeadsFused, siluMulHalvesFused } from '../../lib/kernels/tf_fused';
import { Glm4vTextConfig, readGlm4vConfig } from './config';
import { isIgnoredKey } from './weights';

/** cos, sin [B, L, rotaryDim] of the rotary embedding */
export type RopeCosSin = [tf.Tensor3D, tf.Tensor3D];
/** cos, sin [B, L, 1, headDim] as layers/ops/rotary's rotaryTables pads them, shared by every layer of one forward */
export type RopeTables = [tf.Tensor4D, tf.Tensor4D];

/** M-RoPE tables; holds no tensor (inv_freq is a small host array, a non-persistent buffer in HF). */
export class Glm4vTextRotaryEmbedding extends Module {
  readonly invFreq: Float32Array;
  readonly mropeSection: number[];

  constructor(cfg: Glm4vTextConfig) {
    super();
    this.invFreq = ropeInvFreq(cfg.rope_parameters.rope_theta, cfg.rotaryDim);
    this.mropeSection = [...cfg.rope_parameters.mrope_section];
  }

  /** positionIds [3, B, L] -> cos, sin [B, L, rotaryDim] (attention_scaling is 1 for the default rope type) */
  forward(positionIds: tf.Tensor3D): RopeCosSin {
    return tf.tidy(() => mropeCosSin(positionIds, tf.tensor1d(this.invFreq), this.mropeSection));
  }
}

export class Glm4vTextAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  private readonly H: number;
  private readonly Hkv: number;
  private readonly Dh: number;
  private readonly R: number;

  constructor(cfg: Glm4vTextConfig) {
    super();
    this.R = cfg.rotaryDim;
    this.H = cfg.num_attention_heads;
    this.Hkv = cfg.num_key_value_heads;
    this.Dh = cfg.headDim;
    // GLM always has q/k/v biases (no attention_bias switch) and no o_proj bias.
    this.qProj = this.register('q_proj', new Linear(cfg.hidden_size, this.H * this.Dh, { bias: true }));
    this.kProj = this.register('k_proj', new Linear(cfg.hidden_size, this.Hkv * this.Dh, { bias: true }));
    this.vProj = this.register('v_proj', new Linear(cfg.hidden_size, this.Hkv * this.Dh, { bias: true }));
    this.oProj = this.register('o_proj', new Linear(this.H * this.Dh, cfg.hidden_size, { bias: false }));
  }

  /** x [B, L, D]; mask [B, 1, L, S] additive; cache appended in place -> [B, L, D] */
  forward(x: tf.Tensor3D, rope: RopeTables, mask: tf.Tensor4D | null, cache?: KVCache): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, L, D] = x.shape;
      const [cos, sin] = rope;
      // The projections on [B*L, D] rows (Linear then folds nothing: each reshape is a kernel call on native TF).
      const x2 = tf.reshape(x, [B * L, D]);
      // [B*L, n*Dh] -> [B, n, L, Dh], rotated or not. RoPE runs in the projection layout [B, L, n, Dh], then one
      // transpose; with one token that transpose moves nothing: a reshape lays out the heads (v's; q and k are
      // rotated together below, cos, sin [B, 1, 1, Dh] broadcast over their heads the same way).
      const heads = (t: tf.Tensor, n: number, rotate: boolean): tf.Tensor4D => {
        if (L === 1) return tf.reshape(t, [B, n, 1, this.Dh]) as tf.Tensor4D;
        const h = tf.reshape(t, [B, L, n, this.Dh]) as tf.Tensor4D;
        return tf.transpose(rotate ? applyRotaryPosEmb(h, cos, sin, this.R) : h, [0, 2, 1, 3]) as tf.Tensor4D;
      };
      let qt: tf.Tensor4D, kt: tf.Tensor4D, vt: tf.Tensor4D;
      const [q, k, v] = [this.qProj.forward(x2), this.kProj.forward(x2), this.vProj.forward(x2)] as tf.Tensor2D[];
      // at inference on the native CPU backend one op of the package's own, the same bits (lib/kernels/tf_fused.ts)
      const fused = qkvHeadsFused(q!, k!, v!, cos, sin, this.R);
      if (fused) [qt, kt, vt] = fused;
      else if (L === 1) {
        // one token: the q and k heads side by side, [B, H + Hkv, 1, Dh], rotated by one applyRotation (each head's
        // values are those of its own rotation), then split: 5 kernels fewer than two rotations
        const qk = tf.reshape(tf.concat([q!, k!], 1), [B, this.H + this.Hkv, 1, this.Dh]);
        [qt, kt] = tf.split(applyRotation(qk, cos, sin, interleavedRotation(this.Dh, this.R)), [this.H, this.Hkv], 1) as [tf.Tensor4D, tf.Tensor4D];
        vt = heads(v!, this.Hkv, false);
      } else {
        [qt, kt, vt] = [heads(q!, this.H, true), heads(k!, this.Hkv, true), heads(v!, this.Hkv, false)];
      }
      const scale = this.Dh ** -0.5;
      // [B, L, H, Dh]; with a cache: keys [B, Hkv, S, Dh], values [B, Hkv, Dh, S]
      const out = cache ? cachedAttention(qt, cache.updateAndFetch(kt, vt), mask, scale) : scaledDotProductAttention(qt, kt, vt, mask, scale);
      return tf.reshape(this.oProj.forward(tf.reshape(out, [B * L, this.H * this.Dh])), [B, L, D]) as tf.Tensor3D;
    });
  }
}

export class Glm4vTextMLP extends Module {
  readonly gateUpProj: Linear;
  readonly downProj: Linear;

  constructor(cfg: Glm4vTextConfig) {
    super();
    this.gateUpProj = this.register('gate_up_proj', new Linear(cfg.hidden_size, 2 * cfg.intermediate_size, { bias: false }));
    this.downProj = this.register('down_proj', new Linear(cfg.intermediate_size, cfg.hidden_size, { bias: false }));
  }

  /** [B, L, D] -> [B, L, D]; the first half of gate_up_proj is the gate */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, L, D] = x.shape;
      // on [B*L, D] rows, so that the two Linears fold nothing (a reshape is a kernel call on native TF)
      const gateUp = this.gateUpProj.forward(tf.reshape(x, [B * L, D]));
      // at inference on the native CPU backend one op of the package's own (lib/kernels/tf_fused.ts)
      const act = siluMulHalvesFused(gateUp) ?? siluMul(...(tf.split(gateUp, 2, -1) as [tf.Tensor, tf.Tensor]));
      return tf.reshape(this.downProj.forward(act), [B, L, D]) as tf.Tensor3D;
    });
  }
}

export class Glm4vTextDecoderLayer extends Module {
  readonly selfAttn: Glm4vTextAttention;
  readonly mlp: Glm4vTextMLP;
  readonly inputLayernorm: RMSNorm;
  readonly postAttentionLayernorm: RMSNorm;
  readonly postSelfAttnLayernorm: RMSNorm;
  readonly postMlpLayernorm: RMSNorm;

  constructor(cfg: Glm4vTextConfig) {
    super();
    this.selfAttn = this.register('self_attn', new Glm4vTextAttention(cfg));
    this.mlp = this.register('mlp', new Glm4vTextMLP(cfg));
    this.inputLayernorm = this.register('input_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.postAttentionLayernorm = this.register('post_attention_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.postSelfAttnLayernorm = this.register('post_self_attn_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.postMlpLayernorm = this.register('post_mlp_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  }

  /** GLM's sandwich: each sublayer's output is normalized again before the residual add. [B, L, D] -> [B, L, D] */
  forward(x: tf.Tensor3D, rope: RopeTables, mask: tf.Tensor4D | null, cache?: KVCache): tf.Tensor3D {
    return tf.tidy(() => {
      const attn = this.selfAttn.forward(this.inputLayernorm.forward(x) as tf.Tensor3D, rope, mask, cache);
      const h = tf.add(x, this.postSelfAttnLayernorm.forward(attn)) as tf.Tensor3D;
      const mlp = this.mlp.forward(this.postAttentionLayernorm.forward(h) as tf.Tensor3D);
      return tf.add(h, this.postMlpLayernorm.forward(mlp)) as tf.Tensor3D;
    });
  }
}

export interface TextModelInputs {
  /** [B, L] int32 (exactly one of inputIds / inputsEmbeds) */
  inputIds?: tf.Tensor2D;
  /** [B, L, D] */
  inputsEmbeds?: tf.Tensor3D;
  /** [3, B, L] int32 M-RoPE rows (t, h, w); default arange(past, past + L) on all rows */
  positionIds?: tf.Tensor3D;
  /** [B, past + L] 1 = token, 0 = padding; default all ones */
  attentionMask?: tf.Tensor2D;
  /** updated in place; owns its tensors */
  cache?: TextCache;
}

const shape = (t: tf.Tensor) => JSON.stringify(t.shape);

export class Glm4vTextModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<Glm4vTextDecoderLayer>;
  readonly norm: RMSNorm;
  readonly rotaryEmb: Glm4vTextRotaryEmbedding;
  /** HF's gradient_checkpointing: recompute each layer in the backward pass (grads for the variables it accepts) */
  gradientCheckpointing: ((v: tf.Variable) => boolean) | undefined;

  constructor(readonly config: Glm4vTextConfig) {
    super();
    this.embedTokens = this.register('embed_tokens', new Embedding(config.vocab_size, config.hidden_size));
    const layers = Array.from({ length: config.num_hidden_layers }, () => new Glm4vTextDecoderLayer(config));
    this.layers = this.register('layers', new ModuleList(layers));
    this.norm = this.register('norm', new RMSNorm(config.hidden_size, config.rms_norm_eps));
    this.rotaryEmb = this.register('rotary_emb', new Glm4vTextRotaryEmbedding(config));
  }

  /** The last hidden state after `norm`, [B, L, D]. */
  forward(inputs: TextModelInputs): tf.Tensor3D {
    const { cache } = inputs;
    const [B, L] = checkTextInputs(inputs, this.config);
    return tf.tidy(() => {
      const { h: embeds, positionIds, mask } = textModelInputs(inputs, this.embedTokens, B, L);
      let h = embeds;
      const rope = rotaryTables(...this.rotaryEmb.forward(positionIds), this.config.headDim);
      const ckpt = cache ? undefined : this.gradientCheckpointing;
      const consts = mask ? [...rope, mask] : rope;
      this.layers.items.forEach((layer, i) => {
        h = callLayer(layer, ckpt, (x, c, s, m) => layer.forward(x, [c as tf.Tensor4D, s as tf.Tensor4D], (m ?? null) as tf.Tensor4D | null, cache?.layers[i]), h, consts);
      });
      return this.norm.forward(h) as tf.Tensor3D;
    });
  }

  /** Loads the model.language_model.* part of a full GLM-4.1V / GLM-4.6V checkpoint folder. */
  static fromPretrained(dir: string): Glm4vTextModel {
    const model = new Glm4vTextModel(readGlm4vConfig(dir).text_config);
    return loadCheckpoint(model, dir, { prefix: 'model.language_model.', ignore: isIgnoredKey });
  }
}

/** Boundary checks of TextModelInputs (shapes only, no data read); returns [B, L]. `who` names the model in errors. */
export function checkTextInputs(inputs: TextModelInputs, cfg: { hidden_size: number; num_hidden_layers: number }, who = 'Glm4vTextModel'): [number, number] {
  const { inputIds, inputsEmbeds, positionIds, attentionMask, cache } = inputs;
  if ((inputIds === undefined) === (inputsEmbeds === undefined)) {
    throw new Error(`${who}: give exactly one of inputIds and inputsEmbeds`);
  }
  if (inputsEmbeds && (inputsEmbeds.rank !== 3 || inputsEmbeds.shape[2] !== cfg.hidden_size)) {
    throw new Error(`${who}: inputsEmbeds ${shape(inputsEmbeds)} is not [B, L, ${cfg.hidden_size}]`);
  }
  if (inputIds && inputIds.rank !== 2) throw new Error(`${who}: inputIds ${shape(inputIds)} is not [B, L]`);
  const [B, L] = (inputIds ?? inputsEmbeds)!.shape as [number, number];
  const past = cache?.offset ?? 0;
  if (positionIds && !tf.util.arraysEqual(positionIds.shape, [3, B, L])) {
    throw new Error(`${who}: positionIds ${shape(positionIds)} is not [3, ${B}, ${L}] (rows t, h, w)`);
  }
  if (attentionMask && !tf.util.arraysEqual(attentionMask.shape, [B, past + L])) {
    throw new Error(`${who}: attentionMask ${shape(attentionMask)} is not [${B}, ${past + L}] (past ${past} + ${L} new tokens)`);
  }
  if (cache && cache.layers.length !== cfg.num_hidden_layers) {
    throw new Error(`${who}: cache has ${cache.layers.length} layers, the model ${cfg.num_hidden_layers}`);
  }
  return [B, L];
}

/**
 * What every GLM text model does before its layers: the token embeddings (or the given ones), the default M-RoPE
 * positions arange(past, past + L) on all three rows, and the causal mask: batch-independent [1, 1, L, S] without
 * padding, none for a single query (it sees every key). Call inside the forward's tidy.
 */
export function textModelInputs(inputs: TextModelInputs, embedTokens: Embedding, B: number, L: number): { h: tf.Tensor3D; positionIds: tf.Tensor3D; mask: tf.Tensor4D | null } {
  const past = inputs.cache?.offset ?? 0;
  const h = inputs.inputsEmbeds ?? (embedTokens.forward(inputs.inputIds!) as tf.Tensor3D);
  // built on the host: the rotary tables are computed from host positions (layers/ops/rotary.ts)
  const positionIds = inputs.positionIds ?? tf.tensor3d(Int32Array.from({ length: 3 * B * L }, (_, i) => past + (i % L)), [3, B, L], 'int32');
  const mask = inputs.attentionMask ? causalMask(inputs.attentionMask, L) : L === 1 ? null : unpaddedCausalMask(past + L, L);
  return { h, positionIds, mask: mask as tf.Tensor4D | null };
}
