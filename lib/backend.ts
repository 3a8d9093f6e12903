// Backend selection at start-up: tfjs-node-gpu, else tfjs-node, else wasm, else cpu.
// GLM46V_BACKEND (or setBackendPreference) overrides the order; a missing native backend is never an error.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { installKernelOverrides } from './kernels';
import { prepareWasmThreads } from './kernels/wasm_threads';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu' | 'webgpu';

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'];
const DEFAULT_ORDER: BackendName[] = ['tensorflow', 'wasm', 'cpu'];

let chosen: BackendName | undefined;
let preferred: BackendName | undefined;

/** Ask for a backend before the first `initBackend` (same effect as GLM46V_BACKEND). */
export function setBackendPreference(name: BackendName): void {
  preferred = name;
}

/** Loads the first native tfjs binding that is installed and works; returns its package name or undefined. */
function tryLoadNative(): string | undefined {
  for (const pkg of NATIVE_PACKAGES) {
    try {
      require(pkg);
      return pkg;
    } catch {
      // not installed, or its libtensorflow / CUDA libraries are missing: fall through to the next one
    }
  }
  return undefined;
}

async function trySet(name: BackendName): Promise<boolean> {
  if (name === 'tensorflow' && tryLoadNative() === undefined) return false;
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
  for (const name of order) {
    if (await trySet(name)) {
      await tf.ready();
      installKernelOverrides(name);
      chosen = name;
      if (want && want !== name) {
        process.stderr.write(`glm46v: backend '${want}' is not available here; using '${name}'\n`);
      }
      if (!opts.quiet) process.stderr.write(`glm46v: backend ${name}\n`);
      return name;
    }
  }
  throw new Error('no tfjs backend could be initialised (tried ' + order.join(', ') + ')');
}

/** Releases the backend so the process can exit (needed for multi-threaded wasm). */
export function shutdownBackend(): void {
  if (chosen === 'wasm') tf.engine().removeBackend('wasm');
  // dawn.node may keep Node alive while its GPU object is reachable; ./webgpu is loaded when it was chosen.
  if (chosen === 'webgpu') (require('./webgpu') as typeof import('./webgpu')).shutdownWebGpu();
  chosen = undefined;
}
