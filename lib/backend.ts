// Backend selection at start-up: the native TensorFlow backend (tfjs-node-gpu or tfjs-node, as `glm46v setup` built
// it), else wasm, else cpu. GLM46V_BACKEND (or setBackendPreference) overrides the order; a missing native backend is
// never an error, only one line saying why. GLM46V_VERBOSE=1 lets TensorFlow's and tfjs's own start-up lines through.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installKernelOverrides } from './kernels';
import { prepareWasmThreads } from './kernels/wasm_threads';
import { loadNativeBackend, nativeUsesGpu, nativeVerbose } from './native/load';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';

const DEFAULT_ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let chosen: BackendName | undefined;
/** Why the native backend was passed over, said once on the backend line. */
let nativeMissing: string | undefined;
let preferred: BackendName | undefined;

/** Ask for a backend before the first `initBackend` (same effect as GLM46V_BACKEND). */
export function setBackendPreference(name: BackendName): void {
  preferred = name;
}

async function trySet(name: BackendName): Promise<boolean> {
  if (name === 'tensorflow') {
    const native = loadNativeBackend();
    if (!native.ok) {
      if (!native.quiet) nativeMissing = native.reason;
      return false;
    }
  }
  if (name === 'webgpu') {
    // require, not import(): under tsx an import() loads a second copy of ./webgpu with its own state
    const { setupWebGpu, shutdownWebGpu } = require('./webgpu') as typeof import('./webgpu');
    if (!(await setupWebGpu())) return false;
    if (await tf.setBackend(name).catch(() => false)) return true;
    shutdownWebGpu(); // a backend that did not start must not keep Dawn (and so the process) alive
    return false;
  }
  // GLM46V_WASM_THREADS=N (N > 1) loads the threaded wasm build; its shim must be in place during init only.
  const restoreGlobals = name === 'wasm' ? prepareWasmThreads() : undefined;
  try {
    return await tf.setBackend(name);
  } catch {
    return false;
  } finally {
    restoreGlobals?.();
  }
}

function requestedBackend(): BackendName | undefined {
  const env = process.env.GLM46V_BACKEND?.trim();
  if (env) {
    const ok: BackendName[] = ['tensorflow', 'wasm', 'cpu', 'webgpu'];
    if (!ok.includes(env as BackendName)) {
      throw new Error(`GLM46V_BACKEND=${env}: expected one of ${ok.join(', ')}`);
    }
    return env as BackendName;
  }
  return preferred;
}

/**
 * Picks and initialises the backend once; later calls return the same name.
 * A requested backend that cannot start falls back along the default order with a one-line message.
 */
export async function initBackend(opts: { quiet?: boolean } = {}): Promise<BackendName> {
  if (chosen) return chosen;
  const want = requestedBackend();
  const order = want ? [want, ...DEFAULT_ORDER.filter((b) => b !== want)] : DEFAULT_ORDER;
  // tfjs's "install our node backend" banner on the cpu backend, and its other advice, unless asked for
  if (!nativeVerbose()) tf.enableProdMode();
  for (const name of order) {
    if (await trySet(name)) {
      await tf.ready();
      installKernelOverrides(name);
      chosen = name;
      if (want && want !== name) {
        process.stderr.write(`glm46v: backend '${want}' is not available here; using '${name}'\n`);
      }
      if (!opts.quiet) {
        const why = name !== 'tensorflow' && nativeMissing ? ` (${nativeMissing})` : '';
        process.stderr.write(`glm46v: backend ${describeBackend()}${why}\n`);
      }
      return name;
    }
  }
  throw new Error('no tfjs backend could be initialised (tried ' + order.join(', ') + ')');
}

/** The chosen backend in words, e.g. "tensorflow (TensorFlow 2.21.0, CPU)". */
export function describeBackend(): string {
  if (chosen !== 'tensorflow') return chosen ?? 'none';
  const native = loadNativeBackend();
  const version = native.ok ? native.info.tensorflow : '?';
  const device = nativeUsesGpu() ? 'GPU' : native.ok && native.info.variant === 'gpu' ? 'CPU: tfjs-node-gpu found no CUDA GPU' : 'CPU';
  return `tensorflow (TensorFlow ${version}, ${device})`;
}

/** Releases the backend so the process can exit (needed for multi-threaded wasm). */
export function shutdownBackend(): void {
  if (chosen === 'wasm') tf.engine().removeBackend('wasm');
  // dawn.node may keep Node alive while its GPU object is reachable; ./webgpu is loaded when it was chosen.
  if (chosen === 'webgpu') (require('./webgpu') as typeof import('./webgpu')).shutdownWebGpu();
  chosen = undefined;
}
