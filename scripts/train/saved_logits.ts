// Our logits for a saved checkpoint, for scripts/parity/check_saved.py to compare with transformers' on the same input.
// Usage: npx tsx scripts/train/saved_logits.ts CHECKPOINT_DIR INPUTS.safetensors OUT.safetensors
//   INPUTS holds `in:*` tensors (contracts.md); OUT gets `logits` [B, L, V] (F32).
import { initBackend, shutdownBackend } from '../../lib/backend';
import { referenceInputs } from '../../cli/parity_runner';
import { readAllSafetensors, writeSafetensors } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';

async function main(argv: string[]): Promise<void> {
  const [dir, inputsFile, out] = argv;
  if (!dir || !inputsFile || !out) throw new Error('usage: saved_logits.ts CHECKPOINT_DIR INPUTS.safetensors OUT.safetensors');
  await initBackend({ quiet: true });
  const model = loadModel(dir);
  const inputs = referenceInputs(readAllSafetensors(inputsFile).tensors);
  const { logits } = model.forward({ ...inputs, labels: undefined });
  writeSafetensors(out, [['logits', { dtype: 'F32', shape: logits.shape, data: logits.dataSync() as Float32Array }]], { checkpoint: dir });
  logits.dispose();
  inputs.pixelValues?.dispose();
  model.dispose();
}

main(process.argv.slice(2)).then(() => shutdownBackend(), (e) => {
  process.stderr.write(`saved_logits: ${(e as Error).message}\n`);
  shutdownBackend();
  process.exitCode = 1;
});
