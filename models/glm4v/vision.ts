// Port of transformers/models/glm4v/modeling_glm4v.py (Glm4vVision*, Glm4VisionMlp): the GLM-V vision tower.
// Module keys are the checkpoint keys under `model.visual.`; weights stay in checkpoint layout.
import * as tf from '@tensorflow/tfjs';
import { Embedding } from '../../layers/embedding';
import { callLayer } from '../../layers/grad_checkpoint';
import { Linear } from '../../layers/linear';
import { LayerNorm, RMSNorm } from '../../layers/norms';
import { geluExact, siluMul } from '../../layers/ops/activations';
import { gridSampleBicubic } from '../../layers/ops/grid_sample';
import { ropeInvFreq } from '../../layers/ops/rotary';
import { applyRotaryVision } from '../../layers/ops/vision_rotary';
import { blockDiagonalAttention, blockDiagonalAttentionHeads } from '../../layers/ops/block_diagonal_attention';
import { visionHeadsFused } from '../../lib/kernels/tf_fused';
import { Module, ModuleList, Parameter } from '../../lib/module';
import type { Glm4vVisionConfig } from './config';
import { cuSeqlens, visionPositionIds } from './rope_index';

type Grid = readonly (readonly number[])[];

/**
 * A torch ConvNd whose kernel equals its stride over inputs already cut into kernel-sized pieces (one row each,
 * flattened in the weight's [in, *kernel] order): exactly a linear layer. The weight keeps the checkpoint layout
 * [out, in, *kernel] and is reshaped at the op.
 */
class KernelStrideConv extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  readonly inFeatures: number;

  constructor(inChannels: number, readonly outChannels: number, kernel: number[]) {
    super();
    this.weight = this.param('weight', [outChannels, inChannels, ...kernel]);
    this.bias = this.param('bias', [outChannels], 'zeros');
    this.inFeatures = kernel.reduce((a, b) => a * b, inChannels);
  }

  /** [N, in*prod(kernel)] -> [N, out] */
  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const w = tf.reshape(this.weight.value, [this.outChannels, this.inFeatures]);
      return tf.add(tf.matMul(x, w, false, true), this.bias.value);
    });
  }
}

/** down(silu(gate(x)) * up(x)); its width is out_hidden_size, not intermediate_size. */
export class Glm4VisionMlp extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(config: Glm4vVisionConfig) {
    super();
    const D = config.hidden_size, F = config.out_hidden_size;
    this.gateProj = this.register('gate_proj', new Linear(D, F, { bias: false }));
    this.upProj = this.register('up_proj', new Linear(D, F, { bias: false }));
    this.downProj = this.register('down_proj', new Linear(F, D, { bias: false }));
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.downProj.forward(siluMul(this.gateProj.forward(x), this.upProj.forward(x))) as tf.Tensor2D);
  }
}

/** Conv3d(C, D, kernel = stride = (T, P, P)) on processor rows [c][t][py][px]: one matMul. */
export class Glm4vVisionPatchEmbed extends Module {
  readonly proj: KernelStrideConv;

  constructor(readonly config: Glm4vVisionConfig) {
    super();
    const { in_channels: C, temporal_patch_size: T, patch_size: P } = config;
    this.proj = this.register('proj', new KernelStrideConv(C, config.hidden_size, [T, P, P]));
  }

  /** [N, C*T*P*P] -> [N, D] */
  forward(pixelValues: tf.Tensor2D): tf.Tensor2D {
    const { in_channels: C, temporal_patch_size: T, patch_size: P } = this.config;
    if (pixelValues.shape[1] !== C * T * P * P) {
      throw new Error(`Glm4vVisionPatchEmbed: pixel values ${JSON.stringify(pixelValues.shape)} need ${C}*${T}*${P}*${P} = ${C * T * P * P} columns`);
    }
    return this.proj.forward(pixelValues);
  }
}

/**
 * Axial 2-D rotary: frequencies 1/theta^(2j / (Dh/2)), j < Dh/4, applied to hpos and to wpos; per token the angles
 * are [f(h) | f(w) | f(h) | f(w)] over the head dim (the NeoX pairs i, i + Dh/2 share an angle).
 * inv_freq is a non-persistent buffer in HF, so this module has no parameters.
 */
export class Glm4vVisionRotaryEmbedding extends Module {
  readonly invFreq: Float32Array;

  constructor(readonly config: Glm4vVisionConfig) {
    super();
    const spatialDim = config.headDim / 2;
    const theta = config.rope_parameters.rope_theta;
    this.invFreq = ropeInvFreq(theta, spatialDim); // 1.0 / (base ** (arange(0, spatial_dim, 2).float() / spatial_dim))
  }

  /**
   * hpos, wpos [N] -> cos, sin [N, Dh] (angles as torch's float32 products, cos/sin rounded to float32). Like HF, the
   * angles are tabled once per position (0 .. the largest) and gathered per token.
   */
  forward(hpos: Int32Array, wpos: Int32Array): [tf.Tensor2D, tf.Tensor2D] {
    const F = this.invFreq.length, N = hpos.length, Dh = 4 * F;
    const P = Math.max(hpos.reduce((m, p) => Math.max(m, p), 0), wpos.reduce((m, p) => Math.max(m, p), 0)) + 1;
    const cosAt = new Float32Array(P * F), sinAt = new Float32Array(P * F); // [P, F]
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < F; j++) {
        const a = Math.fround(p * this.invFreq[j]!);
        cosAt[p * F + j] = Math.cos(a);
        sinAt[p * F + j] = Math.sin(a);
      }
    }
    const cos = new Float32Array(N * Dh), sin = new Float32Array(N * Dh);
    for (let n = 0; n < N; n++) {
      const h = hpos[n]! * F, w = wpos[n]! * F, o = n * Dh;
      for (let j = 0; j < F; j++) { // [f(h) | f(w) | f(h) | f(w)]
        cos[o + j] = cos[o + 2 * F + j] = cosAt[h + j]!;
        sin[o + j] = sin[o + 2 * F + j] = sinAt[h + j]!;
        cos[o + F + j] = cos[o + 3 * F + j] = cosAt[w + j]!;
        sin[o + F + j] = sin[o + 3 * F + j] = sinAt[w + j]!;
      }
    }
    return [tf.tensor2d(cos, [N, Dh]), tf.tensor2d(sin, [N, Dh])];
  }
}

/** proj, then exact GELU(LayerNorm), then a SiLU-gated MLP of width intermediate_size (context_dim). */
export class Glm4vVisionPatchMerger extends Module {
  readonly proj: Linear;
  readonly postProjectionNorm: LayerNorm;
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(dim: number, contextDim: number) {
    super();
    this.proj = this.register('proj', new Linear(dim, dim, { bias: false }));
    this.postProjectionNorm = this.register('post_projection_norm', new LayerNorm(dim));
    this.gateProj = this.register('gate_proj', new Linear(dim, contextDim, { bias: false }));
    this.upProj = this.register('up_proj', new Linear(dim, contextDim, { bias: false }));
    this.downProj = this.register('down_proj', new Linear(contextDim, dim, { bias: false }));
  }

  forward(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const h = geluExact(this.postProjectionNorm.forward(this.proj.forward(x)));
      return this.downProj.forward(siluMul(this.gateProj.forward(h), this.upProj.forward(h))) as tf.Tensor2D;
    });
  }
}

/** Learned absolute positions on an S x S grid, bicubically resampled to each image's patch grid and added. */
export class Glm4vVisionEmbeddings extends Module {
  readonly positionEmbedding: Embedding;

  constructor(readonly config: Glm4vVisionConfig) {
    super();
    this.positionEmbedding = this.register('position_embedding', new Embedding(config.numPositionsSide ** 2, config.hidden_size));
  }

  /**
   * embeddings [N, D] in processor order; gridThw per image / temporal slice. Adds table(h, w) to each image's
   * patches: the table sampled at pixel centres of its h x w grid (pre-merge), in merge-window order, per slice.
   * HF finds each token's (h, w) by span index, which only works for t = 1 grids; t > 1 is taken here as t slices.
   */
  forward(embeddings: tf.Tensor2D, gridThw: Grid): tf.Tensor2D {
    return tf.tidy(() => {
      const S = this.config.numPositionsSide, D = this.config.hidden_size, m = this.config.spatial_merge_size;
      const table = tf.reshape(this.positionEmbedding.weight.value, [S, S, D]) as tf.Tensor3D;
      const byShape = new Map<string, tf.Tensor>();
      const parts = gridThw.map(([t, h, w]) => {
        const key = `${h}x${w}`;
        let pos = byShape.get(key);
        if (!pos) {
          const hw = gridSampleBicubic(table, h!, w!); // [h, w, D] raster
          const win = tf.transpose(tf.reshape(hw, [h! / m, m, w! / m, m, D]), [0, 2, 1, 3, 4]); // [h/m, w/m, m, m, D]
          pos = tf.reshape(win, [h! * w!, D]);
          byShape.set(key, pos);
        }
        return t === 1 ? pos : tf.tile(pos, [t!, 1]);
      });
      return tf.add(embeddings, parts.length === 1 ? parts[0]! : tf.concat(parts, 0));
    });
  }
}

/** Non-causal attention within each image / temporal slice (cu_seqlens spans), with the 2-D rotary on q and k. */
export class Glm4vVisionAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly numHeads: number;
  readonly headDim: number;

  constructor(config: Glm4vVisionConfig) {
    super();
    const D = config.hidden_size;
    this.numHeads = config.num_heads;
    this.headDim = config.headDim;
    this.qkv = this.register('qkv', new Linear(D, 3 * D, { bias: config.attention_bias }));
    this.proj = this.register('proj', new Linear(D, D, { bias: false }));
  }

  /** x [N, D]; spans: cu_seqlens; cos, sin [N, Dh] -> [N, D] */
  forward(x: tf.Tensor2D, spans: number[], cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const [N, D] = x.shape;
      const [H, Dh] = [this.numHeads, this.headDim];
      const qkv = this.qkv.forward(x) as tf.Tensor2D;
      // at inference on the native CPU backend one op of the package's own lays out q * scale, k, v [H, N, Dh], q and
      // k rotated, with the same bits (lib/kernels/tf_fused.ts)
      const fused = visionHeadsFused(qkv, cos, sin, H, Dh ** -0.5);
      let out: tf.Tensor3D;
      if (fused) out = blockDiagonalAttentionHeads(...fused, spans);
      else {
        // rows [q | k | v], each head-contiguous; split as [N, D] blocks (wasm copies row by row: N rows, not N*H)
        const [q, k, v] = tf.split(qkv, 3, -1).map((t) => tf.reshape(t, [N, H, Dh]) as tf.Tensor3D);
        out = blockDiagonalAttention(applyRotaryVision(q!, cos, sin), applyRotaryVision(k!, cos, sin), v!, spans, Dh ** -0.5);
      }
      return this.proj.forward(tf.reshape(out, [N, D])) as tf.Tensor2D;
    });
  }
}

/** Pre-norm block: x + attn(norm1(x)), then + mlp(norm2(x)). */
export class Glm4vVisionBlock extends Module {
  readonly norm1: RMSNorm;
  readonly norm2: RMSNorm;
  readonly attn: Glm4vVisionAttention;
  readonly mlp: Glm4VisionMlp;

  constructor(config: Glm4vVisionConfig) {
    super();
    this.norm1 = this.register('norm1', new RMSNorm(config.hidden_size, config.rms_norm_eps));
    this.norm2 = this.register('norm2', new RMSNorm(config.hidden_size, config.rms_norm_eps));
    this.attn = this.register('attn', new Glm4vVisionAttention(config));
    this.mlp = this.register('mlp', new Glm4VisionMlp(config));
  }

  forward(x: tf.Tensor2D, spans: number[], cos: tf.Tensor2D, sin: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.norm1.forward(x) as tf.Tensor2D, spans, cos, sin)) as tf.Tensor2D;
      return tf.add(h, this.mlp.forward(this.norm2.forward(h) as tf.Tensor2D));
    });
  }
}

export class Glm4vVisionModel extends Module {
  readonly embeddings: Glm4vVisionEmbeddings;
  readonly patchEmbed: Glm4vVisionPatchEmbed;
  readonly rotaryPosEmb: Glm4vVisionRotaryEmbedding;
  readonly blocks: ModuleList<Glm4vVisionBlock>;
  readonly merger: Glm4vVisionPatchMerger;
  readonly postConvLayernorm: RMSNorm;
  /** Conv2d(D, out_hidden_size, k = s = merge) on each merge window: weight [out, D, m, m] */
  readonly downsample: KernelStrideConv;
  readonly postLayernorm: RMSNorm;
  /** HF's gradient_checkpointing: recompute each block in the backward pass (grads for the variables it accepts) */
  gradientCheckpointing: ((v: tf.Variable) => boolean) | undefined;

  constructor(readonly config: Glm4vVisionConfig) {
    super();
    const { hidden_size: D, spatial_merge_size: m, rms_norm_eps: eps } = config;
    this.embeddings = this.register('embeddings', new Glm4vVisionEmbeddings(config));
    this.patchEmbed = this.register('patch_embed', new Glm4vVisionPatchEmbed(config));
    this.rotaryPosEmb = this.register('rotary_pos_emb', new Glm4vVisionRotaryEmbedding(config));
    this.blocks = this.register('blocks', new ModuleList(Array.from({ length: config.depth }, () => new Glm4vVisionBlock(config))));
    this.merger = this.register('merger', new Glm4vVisionPatchMerger(config.out_hidden_size, config.intermediate_size));
    this.postConvLayernorm = this.register('post_conv_layernorm', new RMSNorm(D, eps));
    this.downsample = this.register('downsample', new KernelStrideConv(D, config.out_hidden_size, [m, m]));
    this.postLayernorm = this.register('post_layernorm', new RMSNorm(D, eps));
  }

  /**
   * pixelValues [N, C*T*P*P] in processor row order; gridThw [t, h, w] per image (t = 1 per temporal slice for
   * video). Returns the merger output [N / merge^2, out_hidden_size], one row per LLM placeholder token.
   */
  forward(pixelValues: tf.Tensor2D, gridThw: number[][]): tf.Tensor2D {
    const m = this.config.spatial_merge_size, D = this.config.hidden_size;
    const n = gridThw.reduce((a, g) => a + g.reduce((x, y) => x * y, 1), 0);
    if (gridThw.some((g) => g.length !== 3 || g.some((v) => !Number.isInteger(v) || v < 1))) {
      throw new Error(`Glm4vVisionModel: gridThw ${JSON.stringify(gridThw)} must hold positive integer [t, h, w] rows`);
    }
    if (pixelValues.shape[0] !== n) {
      throw new Error(`Glm4vVisionModel: pixel values have ${pixelValues.shape[0]} rows but gridThw ${JSON.stringify(gridThw)} covers ${n} patches`);
    }
    const { hpos, wpos } = visionPositionIds(gridThw, m); // also checks h, w % merge
    const spans = cuSeqlens(gridThw);
    return tf.tidy(() => {
      let x = this.postConvLayernorm.forward(this.patchEmbed.forward(pixelValues)) as tf.Tensor2D;
      const [cos, sin] = this.rotaryPosEmb.forward(hpos, wpos);
      x = this.embeddings.forward(x, gridThw);
      for (const blk of this.blocks) {
        x = callLayer(blk, this.gradientCheckpointing, (h, c, s) => blk.forward(h, spans, c as tf.Tensor2D, s as tf.Tensor2D), x, [cos, sin]);
      }
      x = this.postLayernorm.forward(x) as tf.Tensor2D;
      // each merge window's m*m consecutive rows -> one [D, m, m] conv input, flattened c-major as the weight
      const windows = tf.reshape(tf.transpose(tf.reshape(x, [n / (m * m), m * m, D]), [0, 2, 1]), [n / (m * m), D * m * m]);
      return this.merger.forward(this.downsample.forward(windows as tf.Tensor2D));
    });
  }
}
