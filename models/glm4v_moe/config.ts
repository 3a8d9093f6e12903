// Configs of transformers/models/glm4v_moe/configuration_glm4v_moe.py (Glm4vMoeTextConfig, Glm4vMoeConfig) and of
// glm46v/configuration_glm46v.py when its text_config is a `glm4v_moe_text` one (GLM-4.6V with the MoE backbone).
// Keys are verbatim config.json keys; derived values (camelCase) are computed once here.
import * as path from 'path';
import { ConfigError, Json, bool, int, intList, isObject, num, readJson, str } from '../../lib/config';
import { Glm4vConfig, Glm4vTextConfig, parseGlm4vVisionConfig, parseRope } from '../glm4v/config';

export interface Glm4vMoeTextConfig extends Glm4vTextConfig {
  /** q/k/v biases (o_proj never has one) */
  attention_bias: boolean;
  /** width of each routed expert's MLP; the shared experts are one MLP of width moe_intermediate_size * n_shared_experts */
  moe_intermediate_size: number;
  num_experts_per_tok: number;
  n_shared_experts: number;
  n_routed_experts: number;
  routed_scaling_factor: number;
  /** experts are split into n_group groups; a token picks its experts inside its best topk_group groups */
  n_group: number;
  topk_group: number;
  /** layers 0 .. first_k_dense_replace-1 have a dense MLP (intermediate_size) instead of the MoE block */
  first_k_dense_replace: number;
  norm_topk_prob: boolean;
  router_aux_loss_coef: number;
  /**
   * The expert layout transformers 5.24's save_pretrained writes (derived, not a config.json key): `per_expert` for
   * glm4v_moe (its conversion mapping splits the fused experts on save), `fused` for glm46v (no mapping applies).
   */
  expertLayout: 'per_expert' | 'fused';
}

export interface Glm4vMoeConfig extends Omit<Glm4vConfig, 'model_type' | 'text_config'> {
  model_type: 'glm4v_moe' | 'glm46v';
  text_config: Glm4vMoeTextConfig;
}

/** Glm4vMoeTextConfig's defaults (GLM-4.5V sizes); partial_rotary_factor defaults to 0.5 here, not 1 as in glm4v_text. */
export function parseGlm4vMoeTextConfig(j: Json, top: Json = {}, at = 'text_config.'): Glm4vMoeTextConfig {
  const hidden = int(j, at, 'hidden_size', 4096, 1);
  const heads = int(j, at, 'num_attention_heads', 96, 1);
  const given = (o: Json) => o.partial_rotary_factor !== undefined;
  const rp = (isObject(j.rope_parameters) ? j.rope_parameters : isObject(j.rope_scaling) ? j.rope_scaling : {}) as Json;
  // CMOE __post_init__: kwargs.setdefault("partial_rotary_factor", 0.5) before the rope parameters are standardised
  const withFactor = given(rp) || given(j) || given(top) ? j : { ...j, partial_rotary_factor: 0.5 };
  const c = {
    model_type: str(j, at, 'model_type', 'glm4v_moe_text'),
    vocab_size: int(j, at, 'vocab_size', 151424, 1),
    hidden_size: hidden,
    intermediate_size: int(j, at, 'intermediate_size', 10944, 1),
    num_hidden_layers: int(j, at, 'num_hidden_layers', 46, 1),
    num_attention_heads: heads,
    num_key_value_heads: int(j, at, 'num_key_value_heads', 8, 1),
    hidden_act: str(j, at, 'hidden_act', 'silu'),
    max_position_embeddings: int(j, at, 'max_position_embeddings', 65536, 1),
    initializer_range: num(j, at, 'initializer_range', 0.02),
    rms_norm_eps: num(j, at, 'rms_norm_eps', 1e-5),
    rope_parameters: parseRope(withFactor, top, at),
    pad_token_id: j.pad_token_id === undefined || j.pad_token_id === null ? null : int(j, at, 'pad_token_id'),
    tie_word_embeddings: bool(j, at, 'tie_word_embeddings', false),
    attention_bias: bool(j, at, 'attention_bias', true),
    moe_intermediate_size: int(j, at, 'moe_intermediate_size', 1408, 1),
    num_experts_per_tok: int(j, at, 'num_experts_per_tok', 8, 1),
    n_shared_experts: int(j, at, 'n_shared_experts', 1, 1),
    // attribute_map: num_local_experts is another name for n_routed_experts
    n_routed_experts: int(j, at, j.n_routed_experts === undefined && j.num_local_experts !== undefined ? 'num_local_experts' : 'n_routed_experts', 128, 1),
    routed_scaling_factor: num(j, at, 'routed_scaling_factor', 1.0),
    n_group: int(j, at, 'n_group', 1, 1),
    topk_group: int(j, at, 'topk_group', 1, 1),
    first_k_dense_replace: int(j, at, 'first_k_dense_replace', 1, 0),
    norm_topk_prob: bool(j, at, 'norm_topk_prob', true),
    router_aux_loss_coef: num(j, at, 'router_aux_loss_coef', 1e-4),
  };
  if (c.model_type !== 'glm4v_moe_text') throw new ConfigError(`${at}model_type: expected 'glm4v_moe_text', got '${c.model_type}'`);
  if (c.hidden_act !== 'silu') throw new ConfigError(`${at}hidden_act: only 'silu' is implemented, got '${c.hidden_act}'`);
  if (heads % c.num_key_value_heads) throw new ConfigError(`${at}num_attention_heads: ${heads} is not divisible by num_key_value_heads ${c.num_key_value_heads}`);
  if (j.head_dim === undefined && hidden % heads) throw new ConfigError(`${at}hidden_size: ${hidden} is not divisible by num_attention_heads ${heads} and there is no head_dim`);
  if (bool(j, at, 'output_router_logits', false)) throw new ConfigError(`${at}output_router_logits: the auxiliary load-balancing loss is not implemented; set it to false`);
  const E = c.n_routed_experts, G = c.n_group;
  if (E % G) throw new ConfigError(`${at}n_routed_experts: ${E} is not divisible by n_group ${G}`);
  if (E / G < 2) throw new ConfigError(`${at}n_group: ${G} groups of ${E / G} expert; a group's score is the sum of its best 2, so each needs at least 2`);
  if (c.topk_group > G) throw new ConfigError(`${at}topk_group: ${c.topk_group} is more than n_group ${G}`);
  if (c.num_experts_per_tok > c.topk_group * (E / G)) {
    throw new ConfigError(`${at}num_experts_per_tok: ${c.num_experts_per_tok} is more than the ${c.topk_group * (E / G)} experts of topk_group ${c.topk_group} groups`);
  }
  const headDim = j.head_dim === undefined ? hidden / heads : int(j, at, 'head_dim', undefined, 1);
  const rotaryDim = Math.trunc(headDim * c.rope_parameters.partial_rotary_factor);
  const sum = c.rope_parameters.mrope_section.reduce((a, b) => a + b, 0);
  if (rotaryDim % 2 || sum !== rotaryDim / 2) {
    throw new ConfigError(`${at}rope_parameters.mrope_section: ${JSON.stringify(c.rope_parameters.mrope_section)} sums to ${sum} but rotary dim/2 is ${rotaryDim / 2} (head_dim ${headDim} x partial_rotary_factor ${c.rope_parameters.partial_rotary_factor})`);
  }
  const expertLayout = top.model_type === 'glm46v' ? 'fused' : 'per_expert';
  return { ...c, headDim, rotaryDim, numKvGroups: heads / c.num_key_value_heads, expertLayout };
}

/** Class defaults of Glm4vMoeConfig and Glm46VConfig; the checkpoint's config.json always wins. */
const TOKEN_DEFAULTS = {
  glm4v_moe: { image_token_id: 151363, video_token_id: 151364, video_start_token_id: 151341, video_end_token_id: 151342 },
  glm46v: { image_token_id: 151343, video_token_id: 151344, video_start_token_id: 151361, video_end_token_id: 151362 },
};

/** True for a config.json this folder's models build: glm4v_moe, or glm46v with a glm4v_moe_text text_config. */
export function isMoeConfig(json: unknown): boolean {
  if (!isObject(json)) return false;
  return json.model_type === 'glm4v_moe' || (json.model_type === 'glm46v' && isObject(json.text_config) && json.text_config.model_type === 'glm4v_moe_text');
}

/** Parses a `glm4v_moe` config.json, or a `glm46v` one whose text_config is `glm4v_moe_text`. */
export function parseGlm4vMoeConfig(json: unknown, file = 'config.json'): Glm4vMoeConfig {
  if (!isObject(json)) throw new ConfigError(`${file}: expected a JSON object`);
  const modelType = str(json, '', 'model_type', 'glm4v_moe');
  if (modelType !== 'glm4v_moe' && modelType !== 'glm46v') throw new ConfigError(`${file}: model_type: expected 'glm4v_moe' or 'glm46v', got '${modelType}'`);
  try {
    const nested = isObject(json.text_config);
    const textJson = nested ? (json.text_config as Json) : json;
    const text_config = parseGlm4vMoeTextConfig(textJson, json, nested ? 'text_config.' : '');
    const vision_config = parseGlm4vVisionConfig(isObject(json.vision_config) ? json.vision_config : {});
    const d = TOKEN_DEFAULTS[modelType];
    // Glm4vMoeConfig.__post_init__ takes text_config's tie flag (pre-v5 saves); Glm46VConfig does not.
    const tie = bool(json, '', 'tie_word_embeddings', false) || (modelType === 'glm4v_moe' && text_config.tie_word_embeddings);
    return {
      model_type: modelType,
      text_config,
      vision_config,
      image_token_id: int(json, '', 'image_token_id', d.image_token_id),
      video_token_id: int(json, '', 'video_token_id', d.video_token_id),
      image_start_token_id: int(json, '', 'image_start_token_id', 151339),
      image_end_token_id: int(json, '', 'image_end_token_id', 151340),
      video_start_token_id: int(json, '', 'video_start_token_id', d.video_start_token_id),
      video_end_token_id: int(json, '', 'video_end_token_id', d.video_end_token_id),
      tie_word_embeddings: tie,
      eos_token_id: intList(json, '', 'eos_token_id', intList(textJson, 'text_config.', 'eos_token_id')),
      raw: json,
    };
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`);
    throw e;
  }
}

/** Reads and parses `<dir>/config.json`. */
export function readGlm4vMoeConfig(dir: string): Glm4vMoeConfig {
  const file = path.join(dir, 'config.json');
  return parseGlm4vMoeConfig(readJson(file), file);
}
