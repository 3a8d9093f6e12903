// Analytic matmul FLOPs (2 per multiply-add) of each benchmark row, from the config alone: every linear layer and
// the two attention products (full L x S scores, as eager/sdpa attention computes them). Norms, rotary, softmax and
// the bicubic position resampling are left out, so model-level GFLOP/s is a lower bound on work done.
import type { Glm4vConfig } from '../../models/glm4v/config';

type Grid = readonly number[];

/** glm4v_moe's MoE layers (after first_k_dense_replace): the router, then the chosen and the shared experts only. */
interface MoeTextFields { first_k_dense_replace?: number; moe_intermediate_size?: number; num_experts_per_tok?: number; n_shared_experts?: number; n_routed_experts?: number }

/** One text decoder pass: L new tokens per row attending to S keys, B rows, lm_head on `logitRows` rows in all. */
export function textFlops(cfg: Glm4vConfig, B: number, L: number, S: number, logitRows: number): number {
  const t = cfg.text_config as Glm4vConfig['text_config'] & MoeTextFields;
  const D = t.hidden_size, H = t.num_attention_heads, Hkv = t.num_key_value_heads, Dh = t.headDim;
  const mlp = (I: number) => 2 * 3 * D * I;
  const attn = 2 * (D * H * Dh + 2 * D * Hkv * Dh + H * Dh * D);
  const moe = t.n_routed_experts ? 2 * D * t.n_routed_experts + mlp((t.num_experts_per_tok! + t.n_shared_experts!) * t.moe_intermediate_size!) : 0;
  const dense = t.n_routed_experts ? t.first_k_dense_replace! : t.num_hidden_layers;
  const perToken = dense * (attn + mlp(t.intermediate_size)) + (t.num_hidden_layers - dense) * (attn + moe);
  const attention = t.num_hidden_layers * 2 * 2 * H * L * S * Dh;
  return B * (L * perToken + attention) + logitRows * 2 * D * t.vocab_size;
}

/** The vision tower on the given grids (each temporal slice of each image is one attention span). */
export function visionFlops(cfg: Glm4vConfig, grids: readonly Grid[]): number {
  const v = cfg.vision_config;
  const D = v.hidden_size, F = v.out_hidden_size, C = v.intermediate_size, m2 = v.spatial_merge_size ** 2;
  const patchIn = v.in_channels * v.temporal_patch_size * v.patch_size ** 2;
  let total = 0;
  for (const [t, h, w] of grids) {
    const n = t! * h! * w!, span = h! * w!;
    total += 2 * n * patchIn * D; // patch_embed
    total += v.depth * (2 * n * (D * 3 * D + D * D + 3 * D * F) + t! * 2 * 2 * span * span * D); // blocks
    total += 2 * (n / m2) * (D * m2 * F); // downsample
    total += 2 * (n / m2) * (F * F + 3 * F * C); // merger
  }
  return total;
}

export interface RowFlops {
  matmul: number;
  vision: number;
  prefill: number;
  /** a prefill of the longest decode context */
  prefillLong: number;
  decode: Record<number, number>;
  train: number;
}

export function benchFlops(
  cfg: Glm4vConfig,
  s: { visionGrid: Grid; prefillTokens: number; decodeContexts: number[]; trainBatch: number; trainTokens: number; trainGrid: Grid; matmul: number[] },
): RowFlops {
  const [M, K, N] = s.matmul as [number, number, number];
  const decode: Record<number, number> = {};
  // a decode step at context c: one new token attending to c + 1 keys (itself included)
  for (const c of s.decodeContexts) decode[c] = textFlops(cfg, 1, 1, c + 1, 1);
  const trainGrids = Array.from({ length: s.trainBatch }, () => s.trainGrid);
  // backward = 2 x forward (one product for each input's gradient), so a step is 3 x the forward
  const trainForward = visionFlops(cfg, trainGrids) + textFlops(cfg, s.trainBatch, s.trainTokens, s.trainTokens, s.trainBatch * s.trainTokens);
  return {
    matmul: 2 * M * K * N,
    vision: visionFlops(cfg, [s.visionGrid]),
    prefill: textFlops(cfg, 1, s.prefillTokens, s.prefillTokens, 1),
    prefillLong: textFlops(cfg, 1, Math.max(...s.decodeContexts), Math.max(...s.decodeContexts), 1),
    decode,
    train: 3 * trainForward,
  };
}
