// generation_config.json -> GenerateOptions, as transformers' GenerationConfig: do_sample false means greedy.
import * as fs from 'fs';
import * as path from 'path';
import { intList, isObject, readJson } from '../lib/config';
import type { GenerateOptions } from './generate';

export function readGenerationConfig(dir: string): GenerateOptions {
  const file = path.join(dir, 'generation_config.json');
  if (!fs.existsSync(file)) return {};
  const j = readJson(file);
  if (!isObject(j)) return {};
  const out: GenerateOptions = {};
  const eos = intList(j, 'generation_config.', 'eos_token_id');
  if (eos.length) out.eosTokenId = eos;
  if (typeof j.pad_token_id === 'number') out.padTokenId = j.pad_token_id;
  if (typeof j.max_new_tokens === 'number') out.maxNewTokens = j.max_new_tokens;
  if (typeof j.repetition_penalty === 'number') out.repetitionPenalty = j.repetition_penalty;
  if (j.do_sample === true) {
    out.temperature = typeof j.temperature === 'number' ? j.temperature : 1;
    if (typeof j.top_k === 'number') out.topK = j.top_k;
    if (typeof j.top_p === 'number') out.topP = j.top_p;
  } else {
    out.temperature = 0;
  }
  return out;
}
