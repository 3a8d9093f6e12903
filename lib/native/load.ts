// Registers the native TensorFlow backend built by `glm46v setup` (lib/native/setup.ts) with this package's tfjs.
// tfjs-node's own index.js is not used: it finds its addon through @mapbox/node-pre-gyp and lets TensorFlow's
// start-up lines through. The kernels and the backend class are tfjs-node's, unchanged.
import * as tf from '@tensorflow/tfjs';
import * as fs from 'fs';
import * as path from 'path';
import { addonPackageDir, nativeDir, readStatus } from './paths';

interface QuietAddon {
  mute(): void;
  unmute(): void;
  dlopen(file: string): string | null;
  /** absent from an addon built before they were added (setup rebuilds it) */
  hugePageMark?(): void;
  hugePageAdvise?(minBytes: number): number;
  registerFusedOps?(): string | null;
  fusedOps?(): string[];
  kernelsVectorized?(): boolean;
  kernelIsa?(name?: string): string;
}

/** The quiet addon of the native build, or undefined where it is not built. */
function quietAddon(): QuietAddon | undefined {
  try {
    return require(path.join(nativeDir(), 'quiet', 'build', 'Release', 'glm46v_quiet.node')) as QuietAddon;
  } catch {
    return undefined;
  }
}

/** Asks for huge pages on what one allocation maps: `mark()` before it, `advise(minBytes)` after (bytes advised). */
export interface HugePages {
  mark(): void;
  advise(minBytes: number): number;
}

let hugePagesOnce: { value: HugePages | undefined } | undefined;

/**
 * Transparent huge pages for large weights on the native backend: writing 7.7 GB of fresh float32 weights in 4 KiB
 * pages takes 1.9 M page faults, 512 times fewer in 2 MiB ones (a real-width load 2.69 -> 2.20 s, docs/native.md).
 * Undefined where they cannot help or are not wanted: GLM46V_HUGE_PAGES=0, a kernel whose transparent huge pages are
 * 'never' (or absent: not Linux), no native build or one whose addon predates them.
 */
export function hugePages(): HugePages | undefined {
  if (hugePagesOnce) return hugePagesOnce.value;
  let value: HugePages | undefined;
  const mode = thpMode();
  if (process.env.GLM46V_HUGE_PAGES !== '0' && (mode === 'always' || mode === 'madvise')) {
    const addon = quietAddon();
    if (addon?.hugePageMark && addon.hugePageAdvise) value = { mark: addon.hugePageMark, advise: addon.hugePageAdvise };
  }
  hugePagesOnce = { value };
  return value;
}

/** The kernel's transparent huge page mode ('always', 'madvise' or 'never'), undefined where there is none. */
export function thpMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(fs.readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

export interface NativeBackendInfo {
  variant: 'cpu' | 'gpu';
  /** TensorFlow's own version string (TF_Version) */
  tensorflow: string;
}

export type NativeLoad = { ok: true; info: NativeBackendInfo } | { ok: false; reason: string; quiet: boolean };

let loaded: NativeLoad | undefined;

export const nativeVerbose = (): boolean => process.env.GLM46V_VERBOSE === '1';

/** Runs fn with TensorFlow's pre-InitializeLog lines muted (unless GLM46V_VERBOSE=1). */
function muted<T>(quiet: QuietAddon | undefined, fn: () => T): T {
  if (!quiet) return fn();
  quiet.mute();
  try {
    return fn();
  } finally {
    quiet.unmute();
  }
}

/**
 * Runs fn with file descriptor 2 on /dev/null where the quiet addon is built and GLM46V_VERBOSE is unset: for native
 * libraries that print to stderr themselves (Dawn's limit warnings). JS's own stderr writes in the meantime are lost.
 */
export async function withNativeStderrMuted<T>(fn: () => Promise<T>): Promise<T> {
  const quiet = nativeVerbose() ? undefined : quietAddon(); // no native build: the lines stay
  quiet?.mute();
  try {
    return await fn();
  } finally {
    quiet?.unmute();
  }
}

/** Loads the native build once and registers the 'tensorflow' backend; says why not when it cannot. */
export function loadNativeBackend(): NativeLoad {
  if (loaded) return loaded;
  const status = readStatus();
  if (!status) {
    return (loaded = { ok: false, quiet: false, reason: "native TensorFlow backend not set up: run 'npx glm46v setup'" });
  }
  if (!status.ok) {
    const reason = `${status.reason ?? 'native TensorFlow backend not built'}; 'npx glm46v setup' builds it`;
    return (loaded = { ok: false, quiet: status.optedOut === true, reason });
  }
  const dir = addonPackageDir(status.variant);
  try {
    if (!nativeVerbose()) process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
    if (status.variant === 'gpu') {
      // float32 stays float32: cuBLAS and cuDNN would round matmul inputs to TF32 on Ampere and later GPUs
      process.env.NVIDIA_TF32_OVERRIDE ??= '0';
      // TF would take nearly all GPU memory at start, and tfjs has no API for TF's gpu_options
      process.env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
    }
    const quiet = nativeVerbose()
      ? undefined
      : (require(path.join(nativeDir(), 'quiet', 'build', 'Release', 'glm46v_quiet.node')) as QuietAddon);
    const err = muted(quiet, () => quiet?.dlopen(path.join(dir, 'deps', 'lib', 'libtensorflow_cc.so.2')) ?? null);
    if (err) throw new Error(err);
    const binding = muted(quiet, () => require(path.join(dir, 'build', 'Release', 'tfjs_binding.node'))) as { TF_Version: string };
    require(path.join(dir, 'dist', 'register_all_kernels'));
    const { NodeJSKernelBackend } = require(path.join(dir, 'dist', 'nodejs_kernel_backend'));
    const pkg = status.variant === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
    tf.registerBackend('tensorflow', () => muted(quiet, () => new NodeJSKernelBackend(binding, pkg)), 3);
    return (loaded = { ok: true, info: { variant: status.variant, tensorflow: binding.TF_Version } });
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    return (loaded = { ok: false, quiet: false, reason: `native TensorFlow backend did not load (${msg}): run 'npx glm46v setup --force'` });
  }
}

let fusedOpsError: string | null | undefined; // null: registered

/** The ops lib/kernels/tf_fused.ts runs (lib/native/fused_ops.c registers them). */
export const FUSED_OPS = ['Glm46vAdamW', 'Glm46vRmsNorm', 'Glm46vRmsNormGrad', 'Glm46vSiluMul', 'Glm46vSiluMulPair', 'Glm46vSiluMulGrad', 'Glm46vSoftmax',
  'Glm46vMaskedSoftmax', 'Glm46vLinear', 'Glm46vLinearNoBias', 'Glm46vDecodeAttention', 'Glm46vDecodeAttentionMasked', 'Glm46vQkvHeads',
  'Glm46vVisionHeads', 'Glm46vWritePositions', 'Glm46vBf16Rows'];

/**
 * Whether the package's own TensorFlow ops (lib/native/fused_ops.c) can run: registered once with the
 * loaded TensorFlow, on the CPU. Their kernels are CPU kernels that write their inputs in place: on a GPU TensorFlow
 * would hand them copies, so tfjs-node-gpu with a CUDA device does not use them.
 */
export function fusedOpsReady(): boolean {
  if (!loaded?.ok || nativeUsesGpu()) return false;
  if (fusedOpsError === undefined) {
    const addon = quietAddon(), built = addon?.fusedOps?.() ?? [];
    const lacking = FUSED_OPS.filter((op) => !built.includes(op));
    fusedOpsError = !addon ? 'no addon' : lacking.length ? `the addon predates ${lacking.join(', ')}: run 'npx glm46v setup'` : addon.registerFusedOps!();
  }
  return fusedOpsError === null;
}

let gemv: boolean | undefined;

/** Whether the fused ops run here and their one-token product (Glm46vLinear) has a vector path on this CPU (AVX2 or AVX-512). */
export function fusedGemvReady(): boolean {
  if (!fusedOpsReady()) return false;
  return (gemv ??= quietAddon()?.kernelsVectorized?.() === true);
}

/** The instruction set the fused ops' kernels run ('avx512', 'avx2', 'base'); a name makes them run that one where the CPU has it (specs only). */
export function kernelIsaForTests(name?: string): string | undefined {
  return fusedOpsReady() ? quietAddon()?.kernelIsa?.(name) : undefined;
}

/** Whether the running 'tensorflow' backend placed its ops on a GPU (tfjs-node-gpu with a CUDA device). */
export function nativeUsesGpu(): boolean {
  const be = tf.engine().findBackend('tensorflow') as unknown as { isUsingGpuDevice?: boolean } | null;
  return be?.isUsingGpuDevice === true;
}
