// Picks the model class from config.json's model_type, as transformers' AutoModelForImageTextToText.
import * as path from 'path';
import { ConfigError, isObject, readJson } from '../../lib/config';
import { Glm46VForConditionalGeneration, Glm4vForConditionalGeneration } from './model';

export function loadModel(dir: string): Glm4vForConditionalGeneration {
  const file = path.join(dir, 'config.json');
  const json = readJson(file);
  const type = isObject(json) ? json.model_type : undefined;
  if (type === 'glm46v') return Glm46VForConditionalGeneration.fromPretrained(dir);
  if (type === 'glm4v') return Glm4vForConditionalGeneration.fromPretrained(dir);
  throw new ConfigError(`${file}: model_type: expected 'glm4v' or 'glm46v', got ${JSON.stringify(type)}`);
}
