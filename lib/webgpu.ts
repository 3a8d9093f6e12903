// WebGPU in Node through Dawn (the optional `webgpu` npm package) for @tensorflow/tfjs-backend-webgpu.
// Dawn runs over Vulkan: a real GPU driver when there is one, else Mesa's software renderer lavapipe (Mesa >= 25).
import * as fs from 'fs';
import * as tf from '@tensorflow/tfjs';
import { installWebGpuFixes } from './kernels/webgpu_fixes';
import { withNativeStderrMuted } from './native/load';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { DeviceLimitError, overLimit, setDeviceLimits } from './device_limits';

/** What setupWebGpu found: the adapter's name for humans and whether it is a software renderer. */
export interface WebGpuAdapterReport {
  name: string;
  software: boolean;
  description: string;
}

interface DawnModule {
  create(options: string[]): GPU;
  globals: Record<string, unknown>;
}

// @webgpu/types 0.1.38 (the copy tfjs-core 4.22 pulls in) predates GPUAdapter.info and featureLevel.
interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter?: boolean;
}

function adapterInfo(adapter: GPUAdapter): AdapterInfo {
  return (adapter as unknown as { info: AdapterInfo }).info;
}

interface Session {
  gpu: GPU;
  device: GPUDevice;
  report: WebGpuAdapterReport;
}

let session: Session | undefined;
let lastFailure: string | undefined;

// `webgpu` is an ES module and this package is CommonJS: tsc would turn a plain import() into require(), which
// Node 20 only allows behind a warning, so the dynamic import is kept native.
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

async function loadDawn(): Promise<DawnModule | string> {
  try {
    return (await importEsm('webgpu')) as DawnModule;
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    if (/Cannot find (package|module) 'webgpu'/.test(msg)) {
      return "the optional npm package 'webgpu' (Dawn) is not installed (npm install webgpu)";
    }
    return `the npm package 'webgpu' could not load Dawn on ${process.platform}-${process.arch}: ${msg}`;
  }
}

/** Why Dawn found no adapter, in one line, from what the Vulkan loader would see on Linux. */
function explainNoAdapter(): string {
  const hint = 'a GPU driver with Vulkan, or Mesa >= 25 lavapipe (scripts/gpu/setup_vulkan.sh)';
  if (process.platform !== 'linux') return `Dawn found no WebGPU adapter; needs ${hint}`;
  const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];
  const icds = icdDirs.flatMap((d) => (fs.existsSync(d) ? fs.readdirSync(d) : []));
  const override = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  if (override) return `Dawn found no WebGPU adapter with VK_DRIVER_FILES/VK_ICD_FILENAMES=${override}; needs ${hint}`;
  if (icds.length === 0) return `no Vulkan driver is installed; needs ${hint}`;
  return `Dawn could use none of the Vulkan drivers ${icds.join(', ')} (Mesa < 25 lavapipe lacks a feature Dawn needs); needs ${hint}`;
}

function describe(adapter: GPUAdapter): WebGpuAdapterReport {
  const info = adapterInfo(adapter);
  const software = info.isFallbackAdapter === true || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(info.description);
  const description = info.description || `${info.vendor} ${info.device}`.trim();
  const name = /llvmpipe|lavapipe/i.test(description) ? 'software renderer lavapipe' : description;
  return { name, software, description };
}

/**
 * WebGPUBackend with a readSync that fails with advice instead of "OffscreenCanvas is not defined": the stock one
 * reads GPU buffers synchronously through browser canvases, and Node has neither those nor a blocking buffer map.
 * Tensors whose values are still on the host (never used by a GPU kernel) read synchronously as before.
 */
class NodeWebGPUBackend extends WebGPUBackend {
  override readSync(dataId: object): ReturnType<WebGPUBackend['readSync']> {
    const data = (this as unknown as { tensorMap: { get(id: object): { values?: unknown } } }).tensorMap.get(dataId);
    if (data.values != null || typeof OffscreenCanvas !== 'undefined') return super.readSync(dataId);
    throw new Error(
      'webgpu in Node cannot read a GPU tensor synchronously (dataSync/arraySync/bufferSync): use await t.data() / t.array()',
    );
  }

  /**
   * Refuses a kernel that would bind a tensor larger than the device allows, with a one-line error naming the
   * kernel, the tensor's shape and size and the limit, before anything is dispatched: stock 4.22 checks nothing, Dawn
   * rejects the bind group and the process dies (exit 139) at a later kernel.
   */
  override runWebGPUProgram(...args: Parameters<WebGPUBackend['runWebGPUProgram']>): ReturnType<WebGPUBackend['runWebGPUProgram']> {
    const [program, inputs, outputDtype] = args;
    const name = (program as { shaderKey?: string }).shaderKey?.split('_')[0] ?? 'kernel';
    const over = [...inputs.map((t, i) => overLimit(`${name}'s input ${i}`, t.shape, t.dtype)), overLimit(`${name}'s output`, program.outputShape, outputDtype)]
      .find((m) => m !== undefined);
    if (over) throw new DeviceLimitError(`webgpu: ${over}`);
    return super.runWebGPUProgram(...args);
  }
}

/** A real GPU if Dawn sees one, else the software renderer (core features first, then featureLevel 'compatibility'). */
async function pickAdapter(gpu: GPU): Promise<GPUAdapter | null> {
  const fast = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (fast && !describe(fast).software) return fast;
  const other = await gpu.requestAdapter({ powerPreference: 'low-power' });
  if (other && !describe(other).software) return other;
  if (fast) return fast;
  return gpu.requestAdapter({ featureLevel: 'compatibility' } as GPURequestAdapterOptions);
}

/** The device tfjs-backend-webgpu's own factory would request (base.ts), on the adapter chosen here. */
async function requestDevice(adapter: GPUAdapter): Promise<GPUDevice> {
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has('timestamp-query')) requiredFeatures.push('timestamp-query');
  if (adapter.features.has('bgra8unorm-storage')) requiredFeatures.push('bgra8unorm-storage');
  const l = adapter.limits;
  return adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  });
}

function installNavigatorGpu(dawn: DawnModule, gpu: GPU): void {
  // tfjs-backend-webgpu reads GPUBufferUsage / GPUMapMode / GPUTextureUsage as globals, as in a browser.
  Object.assign(globalThis, dawn.globals);
  const g = globalThis as { navigator?: object };
  if (g.navigator === undefined) g.navigator = {};
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, writable: true });
}

function removeNavigatorGpu(): void {
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav && 'gpu' in nav) delete nav.gpu;
}

function fail(reason: string, quiet: boolean): false {
  lastFailure = `webgpu: ${reason}`;
  if (!quiet) process.stderr.write(`glm46v: ${lastFailure}\n`);
  return false;
}

/**
 * Sets up Dawn's navigator.gpu, picks an adapter and registers the tfjs 'webgpu' backend on its device.
 * Returns false with a one-line explanation on stderr (also in webGpuFailure()) when the `webgpu` package
 * or a usable Vulkan driver is missing; never throws for those.
 */
export async function setupWebGpu(opts: { quiet?: boolean } = {}): Promise<boolean> {
  if (session) return true;
  const quiet = opts.quiet === true;
  const dawn = await loadDawn();
  if (typeof dawn === 'string') return fail(dawn, quiet);
  let gpu: GPU | undefined;
  try {
    gpu = dawn.create([]);
    const g = gpu;
    // Dawn prints two "maxDynamic...BuffersPerPipelineLayout artificially reduced" warnings here; harmless, muted
    const { adapter, device } = await withNativeStderrMuted(async () => {
      const adapter = await pickAdapter(g);
      return { adapter, device: adapter ? await requestDevice(adapter) : undefined };
    });
    if (!adapter || !device) return fail(explainNoAdapter(), quiet);
    const report = describe(adapter);
    installNavigatorGpu(dawn, gpu);
    const info = adapterInfo(adapter) as unknown as GPUAdapterInfo;
    if (tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
    tf.registerBackend('webgpu', () => new NodeWebGPUBackend(device, info), 3);
    installWebGpuFixes();
    session = { gpu, device, report };
    // the device was asked for the adapter's limits (requestDevice); tensors over them are split or refused
    setDeviceLimits({ backend: 'webgpu', device: report.name, maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize, maxBufferSize: device.limits.maxBufferSize });
    lastFailure = undefined;
    const note = report.software ? ` (${report.description}; slow, for tests)` : '';
    process.stderr.write(`glm46v: webgpu adapter: ${report.name}${note}\n`);
    return true;
  } catch (e) {
    removeNavigatorGpu();
    return fail(`Dawn failed to start: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`, quiet);
  } finally {
    if (!session) gpu = undefined;
  }
}

/** The adapter in use, or undefined before a successful setupWebGpu(). */
export function webGpuAdapter(): WebGpuAdapterReport | undefined {
  return session?.report;
}

/** The limits of the device in use (every GPUSupportedLimits field), or undefined before a successful setupWebGpu(). */
export function webGpuLimits(): Record<string, number> | undefined {
  if (!session) return undefined;
  const l = session.device.limits as unknown as Record<string, number>;
  const out: Record<string, number> = {};
  for (const k in l) if (typeof l[k] === 'number') out[k] = l[k]!;
  return out;
}

/** The one-line reason the last setupWebGpu() returned false, or undefined. */
export function webGpuFailure(): string | undefined {
  return lastFailure;
}

/**
 * Releases the backend, the device and navigator.gpu. dawn.node's README ("Lifetime") says Node does not exit
 * while its GPU object is reachable; with webgpu 0.6.2 on lavapipe the process exited either way, but a process
 * that used webgpu should still call this (shutdownBackend does).
 */
export function shutdownWebGpu(): void {
  if (!session) return;
  if (tf.findBackend('webgpu') || tf.findBackendFactory('webgpu')) tf.removeBackend('webgpu');
  setDeviceLimits(undefined);
  session.device.destroy();
  removeNavigatorGpu();
  session = undefined;
}
