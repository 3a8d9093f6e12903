// Greedy generation for `gen:sequences` comparisons: stop ids from the model config, as the reference script.
import { generate } from '../generation/generate';
import type { CausalLmInputs, Glm4vForConditionalGeneration } from '../models/glm4v/model';

export async function generateGreedy(model: Glm4vForConditionalGeneration, inputs: CausalLmInputs, maxNewTokens: number): Promise<number[][]> {
  return generate(model, inputs, { maxNewTokens, temperature: 0 });
}
