// The only checkpoint-key rules of GLM-4.1V / GLM-4.6V (HF keys are the module paths, modeling_glm4v.py has
// `_checkpoint_conversion_mapping = {}`): which keys are skipped on load, one reason per rule.
// Rules match a whole key or a whole dotted suffix of it, so they work on full keys and on prefix-stripped ones.
import { WeightLoadError } from '../../lib/checkpoint';
import { isObject } from '../../lib/config';
import type { Glm4vConfig } from './config';

export interface KeyRule {
  pattern: RegExp;
  reason: string;
}

export const IGNORED_KEYS: KeyRule[] = [
  {
    pattern: /(^|\.)rotary_emb\.(inv_freq|original_inv_freq)$/,
    reason: 'text rotary buffers are non-persistent in HF (recomputed from rope_theta); older exports may still carry them',
  },
  {
    pattern: /(^|\.)rotary_pos_emb\.inv_freq$/,
    reason: 'vision rotary buffer, likewise non-persistent and recomputed from the vision config',
  },
];

/** True for a checkpoint key that is not a parameter of the model (see IGNORED_KEYS for why). */
export function isIgnoredKey(key: string): boolean {
  return IGNORED_KEYS.some((r) => r.pattern.test(key));
}

/**
 * A load error that misses lm_head.weight on an untied config gets a note on why it is not tied: the flag is read at
 * the top level (and, for glm4v only, in text_config), as transformers reads it.
 */
export function explainUntiedHead(e: unknown, config: Glm4vConfig): unknown {
  if (!(e instanceof WeightLoadError) || config.tie_word_embeddings || !/Missing parameters[^;]*\blm_head\.weight\b/.test(e.message)) return e;
  const text = isObject(config.raw) && isObject(config.raw.text_config) && config.raw.text_config.tie_word_embeddings === true;
  const why = text
    ? 'config.json has tie_word_embeddings true only in text_config, which glm46v (as transformers) does not read: set it at the top level'
    : 'config.json does not set tie_word_embeddings: true, so lm_head.weight is a parameter of its own';
  return new WeightLoadError(`${e.message} (${why})`);
}
