// Kernel and gradient overrides that the package relies on, installed once per backend by initBackend.
// Each override applies only to the backend it was written for and is tested against the cpu backend
// (spec/lib/kernels*.spec.ts): wasm gets XNNPACK matmuls for every form, UnsortedSegmentSum and an Identity that
// shares its input's data; 'tensorflow' gets TF's 2-D MatMul op for rank-2 products; every backend gets zero
// gradients for comparison ops. 'webgpu' and 'cpu' get no kernels from here.
import { installTfMatMul } from './tf_matmul';
import { installWasmIdentity } from './wasm_identity';
import { installWasmMatMul } from './wasm_matmul';
import { installWasmSegmentSum } from './wasm_segment_sum';
import { installZeroGradients } from './zero_grads';

const installed = new Set<string>();
let gradientsInstalled = false;

/** Call after the backend has initialised (the wasm matmul wraps the stock kernels bound at init). */
export function installKernelOverrides(backend: string): void {
  if (!gradientsInstalled) {
    installZeroGradients();
    gradientsInstalled = true;
  }
  if (installed.has(backend)) return;
  installed.add(backend);
  if (backend === 'wasm') {
    installWasmMatMul();
    installWasmSegmentSum();
    installWasmIdentity();
  }
  if (backend === 'tensorflow') installTfMatMul();
}
