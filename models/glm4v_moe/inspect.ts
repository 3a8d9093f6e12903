// `glm46v inspect` for MoE checkpoints: what cli/inspect.ts prints for the dense model (config, every weight, counts)
// plus the experts and the parameters active per token. Reads only the safetensors headers.
import { readJson } from '../../lib/config';
import { Glm4vMoeConfig, parseGlm4vMoeConfig } from './config';
import { ExpertLayoutReader, isIgnoredKey } from './weights';

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const fmt = (n: number) => n.toLocaleString('en-US');

/** Routed-expert counts from the config: per-expert size, MoE layers, and the parameters a token does not use. */
export function expertCounts(c: Glm4vMoeConfig['text_config']): { moeLayers: number; perExpert: number; inactivePerToken: number } {
  const moeLayers = Math.max(0, c.num_hidden_layers - c.first_k_dense_replace);
  const perExpert = 3 * c.moe_intermediate_size * c.hidden_size;
  return { moeLayers, perExpert, inactivePerToken: moeLayers * (c.n_routed_experts - c.num_experts_per_tok) * perExpert };
}

/** The lines `glm46v inspect` prints for a glm4v_moe (or glm46v + glm4v_moe_text) folder. */
export function inspectMoe(dir: string, configFile: string): string[] {
  const config = parseGlm4vMoeConfig(readJson(configFile), configFile);
  const { raw: _raw, ...parsed } = config;
  const out = [`config: ${configFile}`, JSON.stringify(parsed, null, 2), '', 'weights:'];
  const reader = new ExpertLayoutReader(dir);
  try {
    if (reader.fused) out.push("  (the file holds transformers' fused experts; shown per expert, as loaded)");
    const keys = reader.keys().sort((x, y) => x.localeCompare(y, 'en', { numeric: true }));
    let total = 0;
    for (const k of keys) {
      const { shape, dtype } = reader.info(k);
      total += numel(shape);
      out.push(`  ${k}  ${JSON.stringify(shape)}  ${dtype}${isIgnoredKey(k) ? '  (ignored on load)' : ''}`);
    }
    const t = config.text_config;
    const { moeLayers, perExpert, inactivePerToken } = expertCounts(t);
    out.push('', 'experts:',
      `  ${t.n_routed_experts} routed experts in ${t.n_group} group(s), ${t.num_experts_per_tok} per token from the best ${t.topk_group} group(s); ${t.n_shared_experts} shared`,
      `  ${moeLayers} MoE layers of ${t.num_hidden_layers} (the first ${Math.min(t.first_k_dense_replace, t.num_hidden_layers)} dense); ${fmt(perExpert)} parameters per routed expert`,
      `  active per token: ${fmt(total - inactivePerToken)} of ${fmt(total)} parameters`);
    out.push(`inspect: ${keys.length} tensors, ${total} parameters`);
  } finally {
    reader.close();
  }
  return out;
}
