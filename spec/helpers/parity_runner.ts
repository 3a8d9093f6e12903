// Shared runner for reference-file specs (mlx-lm's model_test_runner idea): load the file's model, run every
// comparison, fail with the worst offenders listed.
import { expect } from 'chai';
import { generateGreedy } from '../../cli/parity_generate';
import { Comparison, runParity } from '../../cli/parity_runner';
import { loadModel } from '../../models/glm4v/auto';
import { loadReference } from './fixtures';

export async function expectReferenceParity(file: string, opts: { atol?: number } = {}): Promise<Comparison[]> {
  const ref = loadReference(file);
  const model = loadModel(ref.modelDir);
  try {
    const results = await runParity(model, ref.tensors, { atol: opts.atol ?? 1e-4, generate: generateGreedy });
    const bad = results.filter((r) => !r.ok);
    const worst = results.reduce((m, r) => (r.maxAbs > m.maxAbs ? r : m), results[0]!);
    const msg = bad.map((r) => `${r.name} ${JSON.stringify(r.shape)} max_abs_diff=${r.maxAbs.toExponential(3)}${r.note ? ` (${r.note})` : ''}`).join('\n  ');
    expect(bad.length, `${file}: ${bad.length}/${results.length} tensors off:\n  ${msg}`).to.equal(0);
    expect(results.length).to.equal(ref.tensors.size - [...ref.tensors.keys()].filter((k) => k.startsWith('in:')).length);
    console.log(`      ${results.length} tensors, worst ${worst.name} ${worst.maxAbs.toExponential(2)}`);
    return results;
  } finally {
    model.dispose();
  }
}
