// Picks the model class from config.json's model_type, as transformers' AutoModelForImageTextToText.
import * as path from 'path';
import { ConfigError, isObject, readJson } from '../../lib/config';
import { Glm46VForConditionalGeneration, Glm4vForConditionalGeneration } from './model';
import { isMoeConfig } from '../glm4v_moe/config';
import { loadGlm4vMoe } from '../glm4v_moe/model';

export function loadModel(dir: string): Glm4vForConditionalGeneration {
  const file = path.join(dir, 'config.json');
  const json = readJson(file);
  const type = isObject(json) ? json.model_type : undefined;
  if (isMoeConfig(json)) return loadGlm4vMoe(dir); // glm4v_moe, or glm46v with a glm4v_moe_text text_config
  if (type === 'glm46v') return Glm46VForConditionalGeneration.fromPretrained(dir);
  if (type === 'glm4v') return Glm4vForConditionalGeneration.fromPretrained(dir);
  throw new ConfigError(`${file}: model_type: expected 'glm4v', 'glm46v' or 'glm4v_moe', got ${JSON.stringify(type)}`);
}
