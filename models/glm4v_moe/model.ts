// Port of transformers/models/glm4v_moe/modeling_glm4v_moe.py (Glm4vMoeModel, Glm4vMoeForConditionalGeneration), and
// GLM-4.6V with this backbone: Glm46VModel builds its text model with AutoModel, so a glm4v_moe_text text_config gives
// Glm46VForConditionalGeneration over Glm4vMoeTextModel. The composition (vision tower, feature scatter, M-RoPE
// positions, lm_head, loss, generation) is the dense model's, line for line in HF; only the text model differs, and
// without output_router_logits (rejected by the config) the loss is the same labels loss.
import { loadCheckpoint } from '../../lib/checkpoint';
import { assertParametersFit } from '../../lib/device_limits';
import type { Module } from '../../lib/module';
import { Glm46VForConditionalGeneration, Glm46VModel, Glm4vForConditionalGeneration, Glm4vModel } from '../glm4v/model';
import type { Glm4vTextModel } from '../glm4v/text';
import { Glm4vMoeConfig, readGlm4vMoeConfig } from './config';
import { checkMoeBackend, markBuffersFrozen } from './moe';
import { Glm4vMoeTextModel } from './text';
import { ExpertLayoutReader, isIgnoredKey } from './weights';

/**
 * The composite model calls only embedTokens, forward(TextModelInputs) and gradientCheckpointing of its text model,
 * which Glm4vMoeTextModel has with the same types; its field is typed as the dense model.
 */
const moeTextModel = (config: Glm4vMoeConfig) => (): Glm4vTextModel => new Glm4vMoeTextModel(config.text_config) as unknown as Glm4vTextModel;

export class Glm4vMoeModel extends Glm4vModel {
  constructor(override readonly config: Glm4vMoeConfig) {
    super(config, moeTextModel(config));
  }
}

export class Glm4vMoeForConditionalGeneration extends Glm4vForConditionalGeneration {
  constructor(override readonly config: Glm4vMoeConfig) {
    super(config, () => new Glm4vMoeModel(config));
  }
}

/** Glm4vMoeForConditionalGeneration for glm4v_moe, Glm46VForConditionalGeneration over the MoE backbone for glm46v. */
export function buildGlm4vMoe(config: Glm4vMoeConfig): Glm4vForConditionalGeneration {
  checkMoeBackend(); // before any weight is read: the router could not run on this backend
  if (config.model_type === 'glm4v_moe') return new Glm4vMoeForConditionalGeneration(config);
  return new Glm46VForConditionalGeneration(config, () => new Glm46VModel(config, moeTextModel(config)));
}

/**
 * Loads a glm4v_moe (or glm46v + glm4v_moe_text) checkpoint folder, in the per-expert or the fused expert layout,
 * strictly: missing, unexpected and wrong-shaped keys are errors, as for the dense model.
 */
export function loadGlm4vMoe(dir: string): Glm4vForConditionalGeneration {
  const model = buildGlm4vMoe(readGlm4vMoeConfig(dir));
  assertParametersFit(model.namedParams()); // refused before reading: over the wasm heap (webgpu refuses MoE itself)
  loadCheckpoint(model, new ExpertLayoutReader(dir), { ignore: isIgnoredKey });
  markBuffersFrozen(model as Module);
  return model;
}
