// glm46v setup [--gpu] [--force]: builds the native TensorFlow backend (lib/native/setup.ts). npm install runs it with
// --postinstall, where nothing fails the install: a missing prerequisite is one line, and the package runs on WASM.
import type { NativeVariant } from '../lib/native/paths';
import { optOutNative, setupNative } from '../lib/native/setup';
import { CliError, parseArgs } from './args';

const USAGE = 'usage: glm46v setup [--gpu] [--force]';

/** GLM46V_NATIVE: unset/1/cpu builds the CPU backend, gpu the CUDA one, 0 none. */
function variantFromEnv(): NativeVariant | 'off' {
  const v = (process.env.GLM46V_NATIVE ?? '').trim().toLowerCase();
  if (v === '' || v === '1' || v === 'cpu') return 'cpu';
  if (v === 'gpu') return 'gpu';
  if (v === '0' || v === 'off') return 'off';
  throw new CliError(`GLM46V_NATIVE=${process.env.GLM46V_NATIVE}: expected 0, 1, cpu or gpu`);
}

/** Builds the variant asked for (flag, else GLM46V_NATIVE) and says in one line how it went. */
async function setup(gpu: boolean, force: boolean, postinstall: boolean): Promise<void> {
  const env = variantFromEnv();
  if (postinstall && env === 'off') {
    optOutNative();
    return;
  }
  const variant: NativeVariant = gpu ? 'gpu' : env === 'off' ? 'cpu' : env;
  const status = setupNative({ variant, force });
  if (status.ok) {
    process.stderr.write(`glm46v: native TensorFlow backend ready (TensorFlow ${status.tensorflow}, ${variant === 'gpu' ? 'tfjs-node-gpu' : 'tfjs-node'})\n`);
    return;
  }
  const later = postinstall ? "; the package runs on WASM. Add it later with 'npx glm46v setup'" : '';
  process.stderr.write(`glm46v: ${status.reason}${later}\n`);
  if (!postinstall) process.exitCode = 1;
}

export const command = {
  summary: 'build the native TensorFlow backend',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, {
      gpu: { type: 'boolean', help: 'build tfjs-node-gpu against tensorflow[and-cuda] (CUDA 12, cuDNN 9 from pip)' },
      force: { type: 'boolean', help: 'rebuild even when a working build is there' },
      postinstall: { type: 'boolean', help: 'as run by npm install: never fails, honours GLM46V_NATIVE' },
    }, USAGE);
    if (!a) return;
    if (a.postinstall !== true) return setup(a.gpu === true, a.force === true, false);
    try {
      await setup(a.gpu === true, a.force === true, true);
    } catch (e) {
      // nothing fails an install: the reason, and the package runs on WASM
      process.stderr.write(`glm46v setup: ${e instanceof Error ? e.message : String(e)}; the package runs on WASM\n`);
    }
  },
};
