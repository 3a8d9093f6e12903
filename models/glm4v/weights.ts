// The only checkpoint-key rules of GLM-4.1V / GLM-4.6V (HF keys are the module paths, modeling_glm4v.py has
// `_checkpoint_conversion_mapping = {}`): which keys are skipped on load, one reason per rule.
// Rules match a whole key or a whole dotted suffix of it, so they work on full keys and on prefix-stripped ones.

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
