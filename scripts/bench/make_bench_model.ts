// The benchmark's model: one GLM-4.1V-architecture config large enough that matmuls dominate, with fixed
// pseudo-random weights saved in Hugging Face layout (bf16, sharded, model.safetensors.index.json), plus the fixed
// inputs every benchmark row uses (inputs.safetensors). Written in TS so the benchmark needs no Python.
// Usage: npx tsx scripts/bench/make_bench_model.ts [--moe] [DIR]   (default out/bench_model, --moe out/bench_model_moe)
import * as fs from 'fs';
import * as path from 'path';
import { writeSafetensors, WriteTensor } from '../../lib/safetensors';
import { parseGlm4vConfig } from '../../models/glm4v/config';
import { Glm4vForConditionalGeneration } from '../../models/glm4v/model';
import { parseGlm4vMoeConfig } from '../../models/glm4v_moe/config';
import { buildGlm4vMoe } from '../../models/glm4v_moe/model';
import { mulberry32 as rng } from '../../lib/rng';

export const DEFAULT_DIR = path.resolve(__dirname, '../../out/bench_model');
export const DEFAULT_MOE_DIR = path.resolve(__dirname, '../../out/bench_model_moe');

const VOCAB = 8192;
// GLM's special tokens sit at the top of the vocabulary, in the order of the real tokenizer (tiny_models.py).
const FIRST_SPECIAL = VOCAB - 32;
const SPECIAL = {
  endoftext: FIRST_SPECIAL, user: FIRST_SPECIAL + 7, observation: FIRST_SPECIAL + 9,
  beginImage: FIRST_SPECIAL + 10, endImage: FIRST_SPECIAL + 11, beginVideo: FIRST_SPECIAL + 12,
  endVideo: FIRST_SPECIAL + 13, image: FIRST_SPECIAL + 18, video: FIRST_SPECIAL + 19,
};
const EOS = [SPECIAL.endoftext, SPECIAL.user, SPECIAL.observation];

export const BENCH_CONFIG = {
  architectures: ['Glm4vForConditionalGeneration'],
  model_type: 'glm4v',
  dtype: 'bfloat16',
  text_config: {
    model_type: 'glm4v_text', vocab_size: VOCAB, hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: 8,
    num_attention_heads: 16, num_key_value_heads: 4, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
    hidden_act: 'silu', attention_dropout: 0.0, initializer_range: 0.02, use_cache: true,
    // head_dim 64, partial 0.5 -> 32 rotary dims = 16 frequencies, split t/h/w like GLM-4.1V's [8, 12, 12] of 32
    rope_parameters: { rope_type: 'default', rope_theta: 10000.0, partial_rotary_factor: 0.5, mrope_section: [4, 6, 6] },
    pad_token_id: SPECIAL.endoftext, eos_token_id: EOS,
  },
  vision_config: {
    model_type: 'glm4v_vision', depth: 8, hidden_size: 512, num_heads: 8, patch_size: 14, image_size: 336,
    spatial_merge_size: 2, temporal_patch_size: 2, out_hidden_size: 1024, intermediate_size: 2816, rms_norm_eps: 1e-5,
    in_channels: 3, hidden_act: 'silu', attention_bias: false, attention_dropout: 0.0, initializer_range: 0.02,
    rope_parameters: { rope_type: 'axial', rope_theta: 10000.0 },
  },
  tie_word_embeddings: false, eos_token_id: EOS, pad_token_id: SPECIAL.endoftext,
  image_token_id: SPECIAL.image, video_token_id: SPECIAL.video,
  image_start_token_id: SPECIAL.beginImage, image_end_token_id: SPECIAL.endImage,
  video_start_token_id: SPECIAL.beginVideo, video_end_token_id: SPECIAL.endVideo,
};

/**
 * The MoE rows' model (`--moe`): the dense model's shapes as a glm4v_moe (GLM-4.5V layout): layer 0 dense, layers 1-7
 * with 16 routed experts of width 704 (top-4 inside the best 2 of 4 groups) and one shared expert, so a token passes
 * 5 x 704 = 3520 MLP columns where the dense model has 2816, out of 17 x 704 held per layer.
 */
export const BENCH_MOE_CONFIG = {
  ...BENCH_CONFIG,
  architectures: ['Glm4vMoeForConditionalGeneration'],
  model_type: 'glm4v_moe',
  text_config: {
    ...BENCH_CONFIG.text_config, model_type: 'glm4v_moe_text', head_dim: 64, attention_bias: true,
    moe_intermediate_size: 704, n_routed_experts: 16, num_experts_per_tok: 4, n_shared_experts: 1, n_group: 4,
    topk_group: 2, first_k_dense_replace: 1, norm_topk_prob: true, routed_scaling_factor: 1.0,
  },
  vision_config: { ...BENCH_CONFIG.vision_config, model_type: 'glm4v_moe_vision' },
};

/** The shapes of every benchmark row (the inputs file holds tensors of exactly these sizes). */
export const BENCH_SHAPES = {
  visionGrid: [1, 32, 32], // a 448 x 448 image: 1024 patches, 256 LLM tokens
  prefillTokens: 512,
  decodeContexts: [128, 1024, 4096],
  decodeSteps: 64,
  trainBatch: 2,
  trainTokens: 256,
  trainGrid: [1, 16, 16], // one 224 x 224 image per row: 256 patches, 64 image tokens
  matmul: [512, 1024, 2816], // the plain 2-D reference product M x K x N
};

const SHARD_BYTES = 120 * 1024 * 1024;
const STAMPS = { glm4v: 'bench-model-v2', glm4v_moe: 'bench-moe-model-v2' }; // v2: 4096-token decode context


function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Uniform with the given mean and standard deviation (uniform keeps generation fast; only the scale matters). */
function uniform(n: number, seed: number, std: number, mean = 0): Float32Array {
  const r = rng(seed), a = std * Math.sqrt(3), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + a * (2 * r() - 1);
  return out;
}

/** Same scales as scripts/parity/common.py randomize_: activations stay of order one through the depth. */
function weightFor(key: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1), seed = hash(key);
  const leaf = key.slice(key.lastIndexOf('.') + 1);
  if (leaf === 'bias') return uniform(n, seed, 0.02);
  if (leaf === 'e_score_correction_bias') return uniform(n, seed, 0.01); // small: the router's scores pick the experts
  if (shape.length === 1) return uniform(n, seed, 0.1, 1); // norm weights
  if (key.includes('embed_tokens') || key.includes('position_embedding')) return uniform(n, seed, 1);
  return uniform(n, seed, 1 / Math.sqrt(n / shape[0]!)); // [out, in, ...]: fan-in scaling
}

/** Random text ids below the special tokens. */
function textIds(n: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * FIRST_SPECIAL));
}

/** The fixed inputs: tensors plus a JSON description in the metadata. */
function makeInputs(): { tensors: Array<[string, WriteTensor]>; meta: Record<string, string> } {
  const S = BENCH_SHAPES, patchCols = 3 * 2 * 14 * 14;
  const visionPatches = S.visionGrid.reduce((a, b) => a * b, 1);
  const trainPatches = S.trainGrid.reduce((a, b) => a * b, 1);
  const imageTokens = trainPatches / 4;
  // Each training row: 24 text tokens, <|begin_of_image|>, 64 image tokens, <|end_of_image|>, text to 256.
  const trainIds = new Int32Array(S.trainBatch * S.trainTokens), labels = new Int32Array(trainIds.length);
  for (let b = 0; b < S.trainBatch; b++) {
    const text = textIds(S.trainTokens, 300 + b);
    for (let l = 0; l < S.trainTokens; l++) {
      const imgAt = l - 25;
      const id = l === 24 ? SPECIAL.beginImage : imgAt >= 0 && imgAt < imageTokens ? SPECIAL.image : imgAt === imageTokens ? SPECIAL.endImage : text[l]!;
      trainIds[b * S.trainTokens + l] = id;
      labels[b * S.trainTokens + l] = id === SPECIAL.image ? -100 : id;
    }
  }
  const maxCtx = Math.max(...S.decodeContexts);
  const tensors: Array<[string, WriteTensor]> = [
    ['vision.pixel_values', { dtype: 'F32', shape: [visionPatches, patchCols], data: uniform(visionPatches * patchCols, 101, 1) }],
    ['prefill.input_ids', { dtype: 'I32', shape: [1, S.prefillTokens], data: textIds(S.prefillTokens, 102) }],
    ['decode.context_ids', { dtype: 'I32', shape: [1, maxCtx], data: textIds(maxCtx, 103) }],
    ['decode.tokens', { dtype: 'I32', shape: [1, S.decodeSteps], data: textIds(S.decodeSteps, 104) }],
    ['train.input_ids', { dtype: 'I32', shape: [S.trainBatch, S.trainTokens], data: trainIds }],
    ['train.labels', { dtype: 'I32', shape: [S.trainBatch, S.trainTokens], data: labels }],
    ['train.pixel_values', { dtype: 'F32', shape: [S.trainBatch * trainPatches, patchCols], data: uniform(S.trainBatch * trainPatches * patchCols, 105, 1) }],
  ];
  const meta = {
    vision_grid_thw: JSON.stringify([S.visionGrid]),
    train_grid_thw: JSON.stringify(Array.from({ length: S.trainBatch }, () => S.trainGrid)),
    image_token_id: String(SPECIAL.image),
  };
  return { tensors, meta };
}

export function isComplete(dir: string, config: { model_type: string } = BENCH_CONFIG): boolean {
  const f = path.join(dir, 'stamp.json');
  return fs.existsSync(f) && JSON.parse(fs.readFileSync(f, 'utf8')).stamp === STAMPS[config.model_type as keyof typeof STAMPS];
}

/** Writes config.json, the bf16 shards with their index, and inputs.safetensors; returns the float32 weight bytes. */
export function makeBenchModel(dir = DEFAULT_DIR, config: typeof BENCH_CONFIG | typeof BENCH_MOE_CONFIG = BENCH_CONFIG): { dir: string; params: number } {
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(path.join(dir, 'stamp.json'), { force: true });
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.safetensors')) fs.rmSync(path.join(dir, f));
  // routed_scaling_factor 1.0 must stay a float literal for transformers' strict config
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2).replace(/("routed_scaling_factor": \d+)\n/, '$1.0\n') + '\n');
  // Only the key set and shapes are needed: constructing a module allocates no tensors.
  const model = config.model_type === 'glm4v_moe' ? buildGlm4vMoe(parseGlm4vMoeConfig(config)) : new Glm4vForConditionalGeneration(parseGlm4vConfig(config));
  const params = model.namedParams();
  const shards: Array<Array<[string, number[]]>> = [[]];
  let bytes = 0, total = 0, count = 0;
  for (const [key, p] of params) {
    const b = 2 * p.shape.reduce((a, c) => a * c, 1);
    if (bytes + b > SHARD_BYTES && shards[shards.length - 1]!.length) { shards.push([]); bytes = 0; }
    shards[shards.length - 1]!.push([key, p.shape]);
    bytes += b;
    total += b;
    count += b / 2;
  }
  const weightMap: Record<string, string> = {};
  shards.forEach((keys, i) => {
    const name = `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
    const shapes = new Map(keys.map(([k, shape]) => [k, { dtype: 'BF16' as const, shape }]));
    const lazy = keys.map(([k, shape]): [string, () => WriteTensor] => [k, () => ({ dtype: 'BF16', shape, data: weightFor(k, shape) })]);
    writeSafetensors(path.join(dir, name), lazy, { format: 'pt' }, shapes);
    for (const [k] of keys) weightMap[k] = name;
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
  const inputs = makeInputs();
  writeSafetensors(path.join(dir, 'inputs.safetensors'), inputs.tensors, inputs.meta);
  fs.writeFileSync(path.join(dir, 'stamp.json'), JSON.stringify({ stamp: STAMPS[config.model_type as keyof typeof STAMPS], params: count, shards: shards.length }) + '\n');
  return { dir, params: count };
}

// Run as a script only (in scripts/gpu's esbuild bundle every file is `require.main`: it made a model named '--quick')
if (require.main === module && /make_bench_model\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  const moe = process.argv.includes('--moe');
  const dir = path.resolve(process.argv.slice(2).find((a) => a !== '--moe') ?? (moe ? DEFAULT_MOE_DIR : DEFAULT_DIR));
  const t0 = performance.now();
  const { params } = makeBenchModel(dir, moe ? BENCH_MOE_CONFIG : BENCH_CONFIG);
  console.log(`${dir}: ${(params / 1e6).toFixed(1)} M parameters in bf16, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
