// What generation and training need of a model, whatever its family (glm4v, glm4v_moe, a next one): a Module whose
// forward takes the processor's inputs with an optional KV cache and labels, and a config naming its stop and pad
// ids, its depth and the config.json it came from. generation/ and train/ are typed to this, not to a model class.
import type { Module } from '../lib/module';
import type { CausalLmInputs, CausalLmOutput } from '../models/glm4v/model';

export type { CausalLmInputs, CausalLmOutput };

export interface CausalLm extends Module {
  readonly config: {
    /** config.json as read: saving writes it back */
    readonly raw: unknown;
    readonly eos_token_id: readonly number[];
    readonly text_config: { readonly num_hidden_layers: number; readonly pad_token_id?: number | null | undefined };
  };
  forward(inputs: CausalLmInputs): CausalLmOutput;
}
