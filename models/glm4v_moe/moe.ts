// Port of transformers/models/glm4v_moe/modeling_glm4v_moe.py: Glm4vMoeTextTopkRouter, Glm4vMoeTextExperts,
// Glm4vMoeTextMoE and Glm4vMoeTextMLP (in that file's order). The experts are kept as one MLP per expert, the layout of
// the published checkpoints (`mlp.experts.{e}.{gate,up,down}_proj.weight`); weights.ts also reads transformers' fused
// one, and Glm4vMoeTextExperts writes it where transformers does (glm46v). Tokens go only to the experts they chose:
// each expert gathers its rows, runs, and scatter-adds them back.
import * as tf from '@tensorflow/tfjs';
import { HoldsFusedParameters, Module, ModuleList, Parameter } from '../../lib/module';
import type { SaveTensor, SavesOwnTensors } from '../../lib/save';
import { Linear } from '../../layers/linear';
import { siluMul } from '../../layers/ops/activations';
import type { Glm4vMoeTextConfig } from './config';

/**
 * Refuses webgpu: the router reads its expert choices to the host in the middle of the (synchronous) forward, and
 * webgpu in Node has no synchronous reads (docs/gpu.md). Running there would take an asynchronous forward through
 * generation and training, or every expert on every token; docs/moe.md says why neither is done.
 */
export function checkMoeBackend(backend: string = tf.getBackend()): void {
  if (backend === 'webgpu') {
    throw new Error('glm4v_moe: the webgpu backend cannot run Mixture-of-Experts models (the router reads its expert choices to the host synchronously, which webgpu in Node cannot do); use GLM46V_BACKEND=tensorflow or wasm');
  }
}

export interface RouteOptions {
  numExperts: number;
  topK: number;
  nGroup: number;
  topkGroup: number;
}

/**
 * The router's choice for each of N tokens, from `scoresForChoice` [N, E] (sigmoid scores + e_score_correction_bias):
 * a group's score is the sum of its best 2 experts (in float32, as torch); the best `topkGroup` groups stay; inside them
 * the `topK` best experts are chosen. Returns the expert ids [N * topK], best first, row after row. Equal scores go to
 * the lower index (torch.topk leaves ties unspecified; the parity fixtures keep every choice clear of them).
 */
export function selectExperts(scoresForChoice: Float32Array, o: RouteOptions): Int32Array {
  const E = o.numExperts, S = E / o.nGroup, N = scoresForChoice.length / E;
  const out = new Int32Array(N * o.topK);
  const byScore = (s: ArrayLike<number>) => (a: number, b: number) => s[b]! - s[a]! || a - b;
  for (let n = 0; n < N; n++) {
    const s = scoresForChoice.subarray(n * E, (n + 1) * E);
    const groupScores = Array.from({ length: o.nGroup }, (_, g) => {
      const [a, b] = Array.from(s.subarray(g * S, (g + 1) * S)).sort((x, y) => y - x);
      return Math.fround(a! + b!);
    });
    const groups = groupScores.map((_, g) => g).sort(byScore(groupScores)).slice(0, o.topkGroup);
    const candidates = groups.flatMap((g) => Array.from({ length: S }, (_, i) => g * S + i));
    out.set(candidates.sort(byScore(s)).slice(0, o.topK), n * o.topK);
  }
  return out;
}

/** Sigmoid router with group-limited top-k (DeepSeek-V3 style), in float32. */
export class Glm4vMoeTextTopkRouter extends Module implements SavesOwnTensors {
  readonly weight: Parameter;
  /** a buffer in transformers: loaded and saved with the checkpoint, never trained (see markBuffersFrozen) */
  readonly eScoreCorrectionBias: Parameter;

  constructor(private readonly cfg: Glm4vMoeTextConfig) {
    super();
    this.weight = this.param('weight', [cfg.n_routed_experts, cfg.hidden_size]);
    this.eScoreCorrectionBias = this.param('e_score_correction_bias', [cfg.n_routed_experts], 'zeros');
  }

  /**
   * x [N, D] -> router logits [N, E], the chosen experts' weights [N, k] and their ids [N * k] (read to the host:
   * which rows each expert gathers is index math). The correction bias only steers the choice; the weights are the
   * unbiased sigmoid scores, renormalised when norm_topk_prob, times routed_scaling_factor.
   */
  forward(x: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D, Int32Array] {
    checkMoeBackend();
    const { n_routed_experts: E, num_experts_per_tok: k } = this.cfg;
    const N = x.shape[0];
    const [routerLogits, scores] = tf.tidy(() => {
      const logits = tf.matMul(x, this.weight.value, false, true) as tf.Tensor2D; // [N, E]
      return [logits, tf.sigmoid(logits) as tf.Tensor2D];
    });
    const choice = tf.tidy(() => tf.add(scores, this.eScoreCorrectionBias.value));
    const topkIndices = selectExperts(choice.dataSync() as Float32Array, { numExperts: E, topK: k, nGroup: this.cfg.n_group, topkGroup: this.cfg.topk_group });
    choice.dispose();
    const topkWeights = tf.tidy(() => {
      const flat = Int32Array.from(topkIndices, (e, i) => Math.floor(i / k) * E + e);
      let w = tf.reshape(tf.gather(tf.reshape(scores, [N * E]), tf.tensor1d(flat, 'int32')), [N, k]);
      if (this.cfg.norm_topk_prob) w = tf.div(w, tf.add(tf.sum(w, -1, true), tf.scalar(1e-20)));
      return tf.mul(w, tf.scalar(this.cfg.routed_scaling_factor)) as tf.Tensor2D;
    });
    scores.dispose();
    return [routerLogits, topkWeights, topkIndices];
  }

  /** Both tensors stay F32 in a BF16 save: Glm4vMoePreTrainedModel._keep_in_fp32_modules_strict (gate.weight, the bias). */
  checkpointTensors(_prefix: string, tensors: SaveTensor[]): SaveTensor[] {
    return tensors.map((t) => ({ ...t, keepFloat32: true }));
  }
}

/**
 * The routed experts, one Glm4vMoeTextMLP of width moe_intermediate_size each (`experts.{e}`). transformers holds them
 * as two fused parameters (gate_up_proj [E, 2I, H], down_proj [E, H, I]) whatever the checkpoint layout: saving
 * writes that layout where transformers does (cfg.expertLayout), and AdamW steps each fused set as one tensor.
 */
export class Glm4vMoeTextExperts extends ModuleList<Glm4vMoeTextMLP> implements SavesOwnTensors, HoldsFusedParameters {
  constructor(private readonly cfg: Glm4vMoeTextConfig) {
    super(Array.from({ length: cfg.n_routed_experts }, () => new Glm4vMoeTextMLP(cfg, cfg.moe_intermediate_size)));
  }

  /** Per-expert keys as given, or (expertLayout fused) `gate_up_proj` (rows :I gate, I: up per expert) and `down_proj`. */
  checkpointTensors(prefix: string, tensors: SaveTensor[]): SaveTensor[] {
    if (this.cfg.expertLayout === 'per_expert') return tensors;
    const byKey = new Map(tensors.map((t) => [t.key, t]));
    if (byKey.size !== 3 * this.items.length) throw new Error(`${prefix}: expected ${3 * this.items.length} expert tensors to fuse, got ${byKey.size}`);
    const E = this.items.length, I = this.cfg.moe_intermediate_size, H = this.cfg.hidden_size;
    const fuse = (key: string, shape: number[], parts: (e: number) => string[]): SaveTensor => ({
      key: `${prefix}.${key}`,
      shape,
      read: async () => {
        const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
        let at = 0;
        for (let e = 0; e < E; e++) {
          for (const k of parts(e)) {
            const t = byKey.get(`${prefix}.${e}.${k}.weight`);
            if (!t) throw new Error(`${prefix}.${e}.${k}.weight: missing from the tensors to fuse`);
            const v = await t.read();
            out.set(v, at);
            at += v.length;
          }
        }
        return out;
      },
    });
    return [fuse('gate_up_proj', [E, 2 * I, H], () => ['gate_proj', 'up_proj']), fuse('down_proj', [E, H, I], () => ['down_proj'])];
  }

  /** The two sets of keys that are one torch parameter each: every expert's gate and up, every expert's down. */
  fusedParameters(prefix: string): string[][] {
    const keys = (projs: string[]) => this.items.flatMap((_, e) => projs.map((p) => `${prefix}.${e}.${p}.weight`));
    return [keys(['gate_proj', 'up_proj']), keys(['down_proj'])];
  }

  /** x [N, D], topkIndices [N * k], topkWeights [N, k] -> Σ_j weight_j · expert_j(x) per token, [N, D] */
  forward(x: tf.Tensor2D, topkIndices: Int32Array, topkWeights: tf.Tensor2D): tf.Tensor2D {
    const N = x.shape[0];
    const rows: number[][] = this.items.map(() => []), slots: number[][] = this.items.map(() => []);
    topkIndices.forEach((e, i) => {
      rows[e]!.push(Math.floor(i / topkWeights.shape[1]));
      slots[e]!.push(i);
    });
    return tf.tidy(() => {
      const w = tf.reshape(topkWeights, [-1]);
      const outs: tf.Tensor[] = [];
      const tokens: number[] = [];
      this.items.forEach((expert, e) => {
        if (!rows[e]!.length) return;
        const y = expert.forward(tf.gather(x, tf.tensor1d(rows[e]!, 'int32'))); // [n_e, D]
        outs.push(tf.mul(y, tf.expandDims(tf.gather(w, tf.tensor1d(slots[e]!, 'int32')), 1)));
        tokens.push(...rows[e]!);
      });
      return tf.unsortedSegmentSum(tf.concat(outs, 0), tf.tensor1d(tokens, 'int32'), N) as tf.Tensor2D;
    });
  }
}

export class Glm4vMoeTextMoE extends Module {
  readonly experts: Glm4vMoeTextExperts;
  readonly gate: Glm4vMoeTextTopkRouter;
  readonly sharedExperts: Glm4vMoeTextMLP;

  constructor(cfg: Glm4vMoeTextConfig) {
    super();
    this.experts = this.register('experts', new Glm4vMoeTextExperts(cfg));
    this.gate = this.register('gate', new Glm4vMoeTextTopkRouter(cfg));
    this.sharedExperts = this.register('shared_experts', new Glm4vMoeTextMLP(cfg, cfg.moe_intermediate_size * cfg.n_shared_experts));
  }

  /** routed experts + shared experts, [B, L, D] -> [B, L, D] */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    const [B, L, D] = x.shape;
    const flat = tf.reshape(x, [B * L, D]) as tf.Tensor2D;
    const [routerLogits, topkWeights, topkIndices] = this.gate.forward(flat);
    const routed = this.experts.forward(flat, topkIndices, topkWeights);
    const out = tf.tidy(() => tf.add(tf.reshape(routed, [B, L, D]), this.sharedExperts.forward(x)) as tf.Tensor3D);
    tf.dispose([flat, routerLogits, topkWeights, routed]);
    return out;
  }
}

/** A SwiGLU MLP: the dense layers' MLP, each routed expert and the shared experts. */
export class Glm4vMoeTextMLP extends Module {
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(cfg: Glm4vMoeTextConfig, intermediateSize = cfg.intermediate_size) {
    super();
    this.gateProj = this.register('gate_proj', new Linear(cfg.hidden_size, intermediateSize, { bias: false }));
    this.upProj = this.register('up_proj', new Linear(cfg.hidden_size, intermediateSize, { bias: false }));
    this.downProj = this.register('down_proj', new Linear(intermediateSize, cfg.hidden_size, { bias: false }));
  }

  /** [..., D] -> [..., D] */
  forward<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => this.downProj.forward(siluMul(this.gateProj.forward(x), this.upProj.forward(x))) as T);
  }
}

/** Makes every e_score_correction_bias variable non-trainable (a buffer: gradients and optimizers skip it). */
export function markBuffersFrozen(model: Module): void {
  for (const [key, v] of model.namedParameters()) if (key.endsWith('.e_score_correction_bias')) v.trainable = false;
}
