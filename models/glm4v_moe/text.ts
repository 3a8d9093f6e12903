// Port of transformers/models/glm4v_moe/modeling_glm4v_moe.py (Glm4vMoeText*): the Mixture-of-Experts text decoder of
// GLM-4.5V / GLM-4.6V. Names match the checkpoint (model.language_model.*). It differs from the dense glm4v decoder in
// the rotary layout (NeoX halves, not interleaved pairs), head_dim and q/k/v biases from the config, two norms per
// layer (no post-sublayer norms), separate gate/up projections, and the MoE block (./moe.ts) after the first
// first_k_dense_replace layers.
import * as tf from '@tensorflow/tfjs';
import type { KVCache } from '../../lib/kv_cache';
import { Module, ModuleList } from '../../lib/module';
import { Embedding } from '../../layers/embedding';
import { callLayer } from '../../layers/grad_checkpoint';
import { Linear } from '../../layers/linear';
import { RMSNorm } from '../../layers/norms';
import { cachedAttention, scaledDotProductAttention } from '../../layers/ops/attention';
import { mropeCosSin, ropeInvFreq } from '../../layers/ops/rotary';
import { Rotation, applyRotation } from '../../layers/ops/rotation';
import { checkTextInputs, textModelInputs, type RopeCosSin, type TextModelInputs } from '../glm4v/text';
import type { Glm4vMoeTextConfig } from './config';
import { Glm4vMoeTextMLP, Glm4vMoeTextMoE } from './moe';

/** M-RoPE tables in the half layout: cos, sin [B, L, R] = cat([f, f]) of the sectioned frequencies f [B, L, R/2]. */
export class Glm4vMoeTextRotaryEmbedding extends Module {
  readonly invFreq: Float32Array;
  readonly mropeSection: number[];

  constructor(cfg: Glm4vMoeTextConfig) {
    super();
    this.invFreq = ropeInvFreq(cfg.rope_parameters.rope_theta, cfg.rotaryDim);
    this.mropeSection = [...cfg.rope_parameters.mrope_section];
  }

  /** positionIds [3, B, L] -> cos, sin [B, L, rotaryDim] */
  forward(positionIds: tf.Tensor3D): RopeCosSin {
    return tf.tidy(() => mropeCosSin(positionIds, tf.tensor1d(this.invFreq), this.mropeSection, 'halves'));
  }
}

const rotations = new Map<string, Rotation>();

/** rotate_half on the first R of Dh dims: pairs (i, i + R/2), (x_i, x_{i+R/2}) -> (-x_{i+R/2}, x_i); the rest map to 0. */
function partialHalfRotation(Dh: number, R: number): Rotation {
  const key = `${Dh}:${R}`;
  let r = rotations.get(key);
  if (!r) {
    const p = new Float32Array(Dh * Dh), pT = new Float32Array(Dh * Dh);
    for (let i = 0; i < R / 2; i++) {
      const [a, b] = [i, i + R / 2];
      p[b * Dh + a] = -1;
      p[a * Dh + b] = 1;
      pT[a * Dh + b] = -1;
      pT[b * Dh + a] = 1;
    }
    rotations.set(key, (r = { dim: Dh, p, pT }));
  }
  return r;
}

/** apply_rotary_pos_emb of glm4v_moe on x [B, L, H, Dh] with cos, sin [B, L, R]: q_rot * cos + rotate_half(q_rot) * sin. */
function applyRotaryHalf(x: tf.Tensor4D, cos: tf.Tensor3D, sin: tf.Tensor3D): tf.Tensor4D {
  const Dh = x.shape[3], R = cos.shape[2];
  const pad = (t: tf.Tensor3D, value: number) => tf.expandDims(R === Dh ? t : tf.pad(t, [[0, 0], [0, 0], [0, Dh - R]], value), 2);
  return applyRotation(x, pad(cos, 1), pad(sin, 0), partialHalfRotation(Dh, R)) as tf.Tensor4D;
}

export class Glm4vMoeTextAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;
  private readonly H: number;
  private readonly Hkv: number;
  private readonly Dh: number;

  constructor(cfg: Glm4vMoeTextConfig) {
    super();
    [this.H, this.Hkv, this.Dh] = [cfg.num_attention_heads, cfg.num_key_value_heads, cfg.headDim];
    const bias = cfg.attention_bias;
    this.qProj = this.register('q_proj', new Linear(cfg.hidden_size, this.H * this.Dh, { bias }));
    this.kProj = this.register('k_proj', new Linear(cfg.hidden_size, this.Hkv * this.Dh, { bias }));
    this.vProj = this.register('v_proj', new Linear(cfg.hidden_size, this.Hkv * this.Dh, { bias }));
    this.oProj = this.register('o_proj', new Linear(this.H * this.Dh, cfg.hidden_size, { bias: false }));
  }

  /** x [B, L, D]; mask [B, 1, L, S] additive; cache appended in place -> [B, L, D] */
  forward(x: tf.Tensor3D, rope: RopeCosSin, mask: tf.Tensor4D | null, cache?: KVCache): tf.Tensor3D {
    return tf.tidy(() => {
      const [B, L] = x.shape;
      const [cos, sin] = rope;
      const q = applyRotaryHalf(tf.reshape(this.qProj.forward(x), [B, L, this.H, this.Dh]), cos, sin);
      const k = applyRotaryHalf(tf.reshape(this.kProj.forward(x), [B, L, this.Hkv, this.Dh]), cos, sin);
      const v = tf.reshape(this.vProj.forward(x), [B, L, this.Hkv, this.Dh]);
      const [qt, kt, vt] = [q, k, v].map((t) => tf.transpose(t, [0, 2, 1, 3]) as tf.Tensor4D); // [B, H(kv), L, Dh]
      const scale = this.Dh ** -0.5;
      const out = cache ? cachedAttention(qt!, cache.updateAndFetch(kt!, vt!), mask, scale) : scaledDotProductAttention(qt!, kt!, vt!, mask, scale);
      return this.oProj.forward(tf.reshape(out, [B, L, this.H * this.Dh])) as tf.Tensor3D;
    });
  }
}

export class Glm4vMoeTextDecoderLayer extends Module {
  readonly selfAttn: Glm4vMoeTextAttention;
  readonly mlp: Glm4vMoeTextMoE | Glm4vMoeTextMLP;
  readonly inputLayernorm: RMSNorm;
  readonly postAttentionLayernorm: RMSNorm;

  constructor(cfg: Glm4vMoeTextConfig, layerIdx: number) {
    super();
    this.selfAttn = this.register('self_attn', new Glm4vMoeTextAttention(cfg));
    this.mlp = this.register('mlp', layerIdx >= cfg.first_k_dense_replace ? new Glm4vMoeTextMoE(cfg) : new Glm4vMoeTextMLP(cfg));
    this.inputLayernorm = this.register('input_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
    this.postAttentionLayernorm = this.register('post_attention_layernorm', new RMSNorm(cfg.hidden_size, cfg.rms_norm_eps));
  }

  /** Pre-norm residual blocks. [B, L, D] -> [B, L, D] */
  forward(x: tf.Tensor3D, rope: RopeCosSin, mask: tf.Tensor4D | null, cache?: KVCache): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.selfAttn.forward(this.inputLayernorm.forward(x) as tf.Tensor3D, rope, mask, cache)) as tf.Tensor3D;
      return tf.add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h) as tf.Tensor3D)) as tf.Tensor3D;
    });
  }
}

export class Glm4vMoeTextModel extends Module {
  readonly embedTokens: Embedding;
  readonly layers: ModuleList<Glm4vMoeTextDecoderLayer>;
  readonly norm: RMSNorm;
  readonly rotaryEmb: Glm4vMoeTextRotaryEmbedding;
  /** HF's gradient_checkpointing: recompute each layer in the backward pass (grads for the variables it accepts) */
  gradientCheckpointing: ((v: tf.Variable) => boolean) | undefined;

  constructor(readonly config: Glm4vMoeTextConfig) {
    super();
    this.embedTokens = this.register('embed_tokens', new Embedding(config.vocab_size, config.hidden_size));
    const layers = Array.from({ length: config.num_hidden_layers }, (_, i) => new Glm4vMoeTextDecoderLayer(config, i));
    this.layers = this.register('layers', new ModuleList(layers));
    this.norm = this.register('norm', new RMSNorm(config.hidden_size, config.rms_norm_eps));
    this.rotaryEmb = this.register('rotary_emb', new Glm4vMoeTextRotaryEmbedding(config));
  }

  /** The last hidden state after `norm`, [B, L, D]; the same inputs as the dense Glm4vTextModel. */
  forward(inputs: TextModelInputs): tf.Tensor3D {
    const { cache } = inputs;
    const [B, L] = checkTextInputs(inputs, this.config, 'Glm4vMoeTextModel');
    return tf.tidy(() => {
      const { h: embeds, positionIds, mask } = textModelInputs(inputs, this.embedTokens, B, L);
      let h = embeds;
      const rope = this.rotaryEmb.forward(positionIds);
      const ckpt = cache ? undefined : this.gradientCheckpointing;
      const consts = mask ? [...rope, mask] : rope;
      this.layers.items.forEach((layer, i) => {
        h = callLayer(layer, ckpt, (x, c, s, m) => layer.forward(x, [c as tf.Tensor3D, s as tf.Tensor3D], (m ?? null) as tf.Tensor4D | null, cache?.layers[i]), h, consts);
      });
      return this.norm.forward(h) as tf.Tensor3D;
    });
  }
}

