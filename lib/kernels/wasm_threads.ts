// Multi-threaded tfjs-backend-wasm under Node: a shim for tfjs issue #3830 (tfjs_notes.md §3, appendix A.2).
// The threaded build hands Emscripten `blob:` URLs that Node's worker_threads refuse, so while the backend
// initialises we capture the main and worker scripts into temp files and hand out their paths instead.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
// The real module object: the wasm bundle calls require('os').cpus(), which a namespace import could not patch.
import os = require('os');

const ENV_VAR = 'GLM46V_WASM_THREADS';
// Emscripten's pthread pool in the 4.22 build holds 8 workers; more threads would need workers made after
// init, when the patched globals are gone.
const MAX_THREADS = 8;

let optionThreads: number | undefined;

/** Threads for the wasm backend (same effect as GLM46V_WASM_THREADS); call before the backend initialises. */
export function setWasmThreads(n: number): void {
  optionThreads = checkThreads(n, 'setWasmThreads');
}

function checkThreads(n: number, source: string): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new Error(`${source}: wasm threads must be an integer in [1, ${MAX_THREADS}], got ${String(n)}`);
  }
  return n;
}

/** The thread count asked for by setWasmThreads or GLM46V_WASM_THREADS; 1 (stock single-thread build) when unset. */
export function requestedWasmThreads(): number {
  if (optionThreads !== undefined) return optionThreads;
  const env = process.env[ENV_VAR]?.trim();
  if (!env) return 1;
  return checkThreads(Number(env), `${ENV_VAR}=${env}`);
}

/**
 * Patches the globals the threaded build needs; call right before `tf.setBackend('wasm')` and call the returned
 * function right after it settles. With 1 thread requested it does nothing and the stock SIMD build loads.
 * The process then only exits once the backend is removed (`tf.engine().removeBackend('wasm')`, as
 * shutdownBackend does): that is what terminates the pthread workers.
 */
export function prepareWasmThreads(): () => void {
  const threads = requestedWasmThreads();
  // Once the wasm module is loaded its build is fixed; a later setBackend('wasm') just reuses it.
  if (threads <= 1 || tf.engine().registry['wasm'] !== undefined) return () => {};

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-wasm-mt-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const mainPath = path.join(dir, 'main.js');
  let nWorkers = 0;

  const OrigBlob = globalThis.Blob;
  const texts = new WeakMap<Blob, string>();
  class CapturingBlob extends OrigBlob {
    constructor(parts: BlobPart[] = [], opts?: BlobPropertyBag) {
      super(parts, opts);
      const text = parts.map((p) => (typeof p === 'string' ? p : '')).join('');
      texts.set(this, text);
      if (text.startsWith('var WasmBackendModuleThreadedSimd')) {
        // The bundled factory refers to requires that rollup renamed in tf-backend-wasm.node.js.
        const prelude =
          "var require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks')," +
          "require$$4=require('os'),commonjsGlobal=globalThis;\n";
        fs.writeFileSync(mainPath, prelude + text);
      }
    }
  }
  const origCreateObjectURL = URL.createObjectURL;
  const patchedCreateObjectURL = (obj: Blob): string => {
    const text = texts.get(obj);
    if (text === undefined) return origCreateObjectURL(obj);
    const file = path.join(dir, `worker${nWorkers++}.js`);
    // The worker turns the main-script Blob it receives into a URL the same way; point it at the file.
    const redirect = `\n;URL.createObjectURL=()=>${JSON.stringify(mainPath)};URL.revokeObjectURL=()=>{};\n`;
    fs.writeFileSync(file, text + redirect);
    return file;
  };
  // The C++ side caps the pool at emscripten_num_logical_cores()/2, i.e. os.cpus().length/2 in Node.
  const origCpus = os.cpus;
  const patchedCpus = (): os.CpuInfo[] => {
    const cpus = origCpus.call(os);
    const out = [...cpus];
    while (out.length < 2 * threads) out.push(...cpus);
    return out;
  };

  globalThis.Blob = CapturingBlob as typeof Blob;
  URL.createObjectURL = patchedCreateObjectURL;
  os.cpus = patchedCpus;
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  setThreadsCount(threads);

  return () => {
    globalThis.Blob = OrigBlob;
    URL.createObjectURL = origCreateObjectURL;
    os.cpus = origCpus;
    endIdleWorkers();
  };
}

/** The slice of the wasm module's Emscripten PThread object used here. */
interface PThreadPool {
  unusedWorkers: Array<{ terminate(): void }>;
  runningWorkers: unknown[];
}

/** The threaded module's pthread pool, when the threaded build is the one loaded. */
export function wasmPThreads(): PThreadPool | undefined {
  return (tf.findBackend('wasm') as { wasm?: { PThread?: PThreadPool } } | null)?.wasm?.PThread;
}

/**
 * The build pre-spawns 8 pthread workers; XNNPACK's pool takes its `threads - 1` at init and never more, so the
 * rest would only hold memory (~12 MiB of RSS each): they are terminated.
 */
function endIdleWorkers(): void {
  for (const w of wasmPThreads()?.unusedWorkers.splice(0) ?? []) w.terminate();
}
