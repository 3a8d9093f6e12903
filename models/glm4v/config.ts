// Configs of transformers/models/glm4v/configuration_glm4v.py and glm46v/configuration_glm46v.py.
// Keys are verbatim config.json keys; derived values (camelCase) are computed once here.
import * as path from 'path';
import { ConfigError, Json, bool, brief, int, intList, isObject, num, readJson, str } from '../../lib/config';

export interface Glm4vVisionConfig {
  model_type: string;
  depth: number;
  hidden_size: number;
  hidden_act: string;
  attention_bias: boolean;
  num_heads: number;
  in_channels: number;
  image_size: number;
  patch_size: number;
  rms_norm_eps: number;
  spatial_merge_size: number;
  temporal_patch_size: number;
  /** width of the vision-block MLP and of the merger (not `intermediate_size`) */
  out_hidden_size: number;
  /** the merger's context_dim */
  intermediate_size: number;
  initializer_range: number;
  headDim: number;
  /** side of the learned position table: sqrt(num_positions) */
  numPositionsSide: number;
  /** the 2-D vision rotary: v5 `rope_parameters` (rope_type 'axial'), default theta 10000 */
  rope_parameters: { rope_type: 'axial'; rope_theta: number };
}

export interface RopeParameters {
  rope_type: string;
  rope_theta: number;
  partial_rotary_factor: number;
  mrope_section: [number, number, number];
}

export interface Glm4vTextConfig {
  model_type: string;
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  hidden_act: string;
  max_position_embeddings: number;
  initializer_range: number;
  rms_norm_eps: number;
  rope_parameters: RopeParameters;
  pad_token_id: number | null;
  /** text_config's own flag, as written (pre-v5 saves put it here); what ties is Glm4vConfig.tie_word_embeddings */
  tie_word_embeddings: boolean;
  /** hidden_size / num_attention_heads (GLM hard-codes it; there is no head_dim key) */
  headDim: number;
  /** int(headDim * partial_rotary_factor): the leading dims that rotate */
  rotaryDim: number;
  /** query heads per key/value head */
  numKvGroups: number;
}

export interface Glm4vConfig {
  model_type: 'glm4v' | 'glm46v' | 'glm4v_moe';
  text_config: Glm4vTextConfig;
  vision_config: Glm4vVisionConfig;
  image_token_id: number;
  video_token_id: number;
  image_start_token_id: number;
  image_end_token_id: number;
  video_start_token_id: number;
  video_end_token_id: number;
  /** lm_head.weight is model.language_model.embed_tokens.weight (one parameter); see parseGlm4vConfig for where it is read */
  tie_word_embeddings: boolean;
  eos_token_id: number[];
  /** the parsed config.json, unknown keys included */
  raw: Json;
}

/** GLM-4.6V has the same model config; only its class defaults for the video start/end ids differ. */
export type Glm46VConfig = Glm4vConfig;

const VISION_KEYS = new Set([
  'model_type', 'depth', 'hidden_size', 'hidden_act', 'attention_bias', 'attention_dropout', 'num_heads', 'in_channels',
  'image_size', 'patch_size', 'rms_norm_eps', 'spatial_merge_size', 'temporal_patch_size', 'out_hidden_size',
  'intermediate_size', 'initializer_range', 'hidden_dropout_prob', 'dtype', 'torch_dtype', 'rope_parameters', 'rope_theta',
]);

export function parseGlm4vVisionConfig(j: Json, at = 'vision_config.'): Glm4vVisionConfig {
  const c = {
    model_type: str(j, at, 'model_type', 'glm4v_vision'),
    depth: int(j, at, 'depth', 24, 1),
    hidden_size: int(j, at, 'hidden_size', 1536, 1),
    hidden_act: str(j, at, 'hidden_act', 'silu'),
    attention_bias: bool(j, at, 'attention_bias', false),
    num_heads: int(j, at, 'num_heads', 12, 1),
    in_channels: int(j, at, 'in_channels', 3, 1),
    image_size: int(j, at, 'image_size', 336, 1),
    patch_size: int(j, at, 'patch_size', 14, 1),
    rms_norm_eps: num(j, at, 'rms_norm_eps', 1e-5),
    spatial_merge_size: int(j, at, 'spatial_merge_size', 2, 1),
    temporal_patch_size: int(j, at, 'temporal_patch_size', 2, 1),
    out_hidden_size: int(j, at, 'out_hidden_size', 4096, 1),
    intermediate_size: int(j, at, 'intermediate_size', 13696, 1),
    initializer_range: num(j, at, 'initializer_range', 0.02),
  };
  if (c.hidden_size % c.num_heads) throw new ConfigError(`${at}hidden_size: ${c.hidden_size} is not divisible by num_heads ${c.num_heads}`);
  if (c.hidden_act !== 'silu') throw new ConfigError(`${at}hidden_act: only 'silu' is implemented, got '${c.hidden_act}'`);
  if (c.image_size % c.patch_size) throw new ConfigError(`${at}image_size: ${c.image_size} is not a multiple of patch_size ${c.patch_size}`);
  const headDim = c.hidden_size / c.num_heads;
  if (headDim % 4) throw new ConfigError(`${at}hidden_size/num_heads: head dim ${headDim} must be a multiple of 4 for the 2-D rotary`);
  // Glm4vVisionConfig: default_rope_type 'axial' (a 'default' rope_type is promoted to it), default_theta 10000.
  const rp: Json = isObject(j.rope_parameters) ? j.rope_parameters : {};
  const ropeType = rp.rope_type ?? rp.type ?? 'axial';
  if (ropeType !== 'axial' && ropeType !== 'default') throw new ConfigError(`${at}rope_parameters.rope_type: only 'axial' is implemented, got ${brief(ropeType)}`);
  const theta = rp.rope_theta ?? j.rope_theta ?? 10000;
  if (typeof theta !== 'number' || !(theta > 0)) throw new ConfigError(`${at}rope_parameters.rope_theta: expected a positive number, got ${brief(theta)}`);
  return { ...c, headDim, numPositionsSide: c.image_size / c.patch_size, rope_parameters: { rope_type: 'axial', rope_theta: theta } };
}

/** Reads the v5 `rope_parameters` or the v4 spellings (`rope_scaling`, top-level `rope_theta`, `partial_rotary_factor`). */
export function parseRope(j: Json, top: Json, at: string): RopeParameters {
  const key = isObject(j.rope_parameters) ? 'rope_parameters' : isObject(j.rope_scaling) ? 'rope_scaling' : undefined;
  const rp: Json = key ? (j[key] as Json) : {};
  const rat = `${at}${key ?? 'rope_parameters'}.`;
  const ropeType = (rp.rope_type ?? rp.type ?? 'default') as string;
  if (ropeType !== 'default' && ropeType !== 'mrope') throw new ConfigError(`${rat}rope_type: only 'default' is implemented, got ${brief(ropeType)}`);
  const theta = rp.rope_theta ?? j.rope_theta ?? top.rope_theta ?? 10000;
  const factor = rp.partial_rotary_factor ?? j.partial_rotary_factor ?? top.partial_rotary_factor ?? 1.0;
  const section = rp.mrope_section ?? [8, 12, 12];
  if (typeof theta !== 'number' || theta <= 0) throw new ConfigError(`${rat}rope_theta: expected a positive number, got ${brief(theta)}`);
  if (typeof factor !== 'number' || factor <= 0 || factor > 1) throw new ConfigError(`${rat}partial_rotary_factor: expected a number in (0, 1], got ${brief(factor)}`);
  if (!Array.isArray(section) || section.length !== 3 || !section.every((s) => Number.isInteger(s) && s >= 0)) {
    throw new ConfigError(`${rat}mrope_section: expected three non-negative integers, got ${brief(section)}`);
  }
  return { rope_type: 'default', rope_theta: theta, partial_rotary_factor: factor, mrope_section: section as [number, number, number] };
}

export function parseGlm4vTextConfig(j: Json, top: Json = {}, at = 'text_config.'): Glm4vTextConfig {
  const hidden = int(j, at, 'hidden_size', 4096, 1);
  const heads = int(j, at, 'num_attention_heads', 32, 1);
  const c = {
    model_type: str(j, at, 'model_type', 'glm4v_text'),
    vocab_size: int(j, at, 'vocab_size', 151552, 1),
    hidden_size: hidden,
    intermediate_size: int(j, at, 'intermediate_size', 13696, 1),
    num_hidden_layers: int(j, at, 'num_hidden_layers', 40, 1),
    num_attention_heads: heads,
    num_key_value_heads: int(j, at, 'num_key_value_heads', (j.num_key_value_heads ?? heads) as number, 1),
    hidden_act: str(j, at, 'hidden_act', 'silu'),
    max_position_embeddings: int(j, at, 'max_position_embeddings', 32768, 1),
    initializer_range: num(j, at, 'initializer_range', 0.02),
    rms_norm_eps: num(j, at, 'rms_norm_eps', 1e-5),
    rope_parameters: parseRope(j, top, at),
    pad_token_id: j.pad_token_id === undefined || j.pad_token_id === null ? null : int(j, at, 'pad_token_id'),
    tie_word_embeddings: bool(j, at, 'tie_word_embeddings', false),
  };
  if (c.model_type !== 'glm4v_text') throw new ConfigError(`${at}model_type: only 'glm4v_text' is implemented, got '${c.model_type}'`);
  if (c.hidden_act !== 'silu') throw new ConfigError(`${at}hidden_act: only 'silu' is implemented, got '${c.hidden_act}'`);
  if (hidden % heads) throw new ConfigError(`${at}hidden_size: ${hidden} is not divisible by num_attention_heads ${heads}`);
  if (heads % c.num_key_value_heads) throw new ConfigError(`${at}num_attention_heads: ${heads} is not divisible by num_key_value_heads ${c.num_key_value_heads}`);
  const headDim = hidden / heads;
  const rotaryDim = Math.trunc(headDim * c.rope_parameters.partial_rotary_factor);
  const sum = c.rope_parameters.mrope_section.reduce((a, b) => a + b, 0);
  if (rotaryDim % 2 || sum !== rotaryDim / 2) {
    const key = isObject(j.rope_parameters) ? 'rope_parameters' : 'rope_scaling';
    throw new ConfigError(`${at}${key}.mrope_section: ${brief(c.rope_parameters.mrope_section)} sums to ${sum} but rotary dim/2 is ${rotaryDim / 2} (head_dim ${headDim} x partial_rotary_factor ${c.rope_parameters.partial_rotary_factor})`);
  }
  return { ...c, headDim, rotaryDim, numKvGroups: heads / c.num_key_value_heads };
}

/** Class defaults of Glm4vConfig and Glm46VConfig; the checkpoint's config.json always wins. */
const TOKEN_DEFAULTS = {
  glm4v: { video_start_token_id: 151341, video_end_token_id: 151342 },
  glm46v: { video_start_token_id: 151361, video_end_token_id: 151362 },
};

/** Parses a `glm4v` or `glm46v` config.json (nested, or legacy flat with the text keys at the top level). */
export function parseGlm4vConfig(json: unknown, file = 'config.json'): Glm4vConfig {
  if (!isObject(json)) throw new ConfigError(`${file}: expected a JSON object`);
  const modelType = json.model_type ?? 'glm4v';
  if (modelType !== 'glm4v' && modelType !== 'glm46v') {
    throw new ConfigError(`${file}: model_type: expected 'glm4v' or 'glm46v', got ${brief(modelType)}`);
  }
  const wrap = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ConfigError) throw new ConfigError(`${file}: ${e.message}`);
      throw e;
    }
  };
  return wrap(() => {
    const textJson = isObject(json.text_config) ? json.text_config : json;
    const visionJson = isObject(json.vision_config) ? json.vision_config : {};
    const text_config = parseGlm4vTextConfig(textJson, json, isObject(json.text_config) ? 'text_config.' : '');
    const vision_config = parseGlm4vVisionConfig(visionJson);
    const d = TOKEN_DEFAULTS[modelType];
    // transformers 5.24 ties lm_head to embed_tokens on the top-level flag only. Glm4vConfig.__post_init__ also takes
    // text_config's (where pre-v5 saves put it); Glm46VConfig has no such line, so there text_config's flag ties nothing.
    const tie = bool(json, '', 'tie_word_embeddings', false) || (modelType === 'glm4v' && text_config.tie_word_embeddings);
    const c: Glm4vConfig = {
      model_type: modelType,
      text_config,
      vision_config,
      image_token_id: int(json, '', 'image_token_id', 151343),
      video_token_id: int(json, '', 'video_token_id', 151344),
      image_start_token_id: int(json, '', 'image_start_token_id', 151339),
      image_end_token_id: int(json, '', 'image_end_token_id', 151340),
      video_start_token_id: int(json, '', 'video_start_token_id', d.video_start_token_id),
      video_end_token_id: int(json, '', 'video_end_token_id', d.video_end_token_id),
      tie_word_embeddings: tie,
      eos_token_id: intList(json, '', 'eos_token_id', intList(textJson as Json, 'text_config.', 'eos_token_id')),
      raw: json,
    };
    for (const k of Object.keys(visionJson)) {
      if (!VISION_KEYS.has(k)) process.env.GLM46V_DEBUG && process.stderr.write(`${file}: vision_config.${k} is not used\n`);
    }
    return c;
  });
}

/** Reads and parses `<dir>/config.json`. */
export function readGlm4vConfig(dir: string): Glm4vConfig {
  const file = path.join(dir, 'config.json');
  return parseGlm4vConfig(readJson(file), file);
}
