// Two kernel fixes for tfjs-backend-webgpu 4.22, installed wherever the webgpu backend runs (Dawn in Node,
// lib/webgpu.ts; a browser, web/browser.ts): both are caught by spec/lib/webgpu.spec.ts.
import * as tf from '@tensorflow/tfjs';

/** Both fixes for the 'webgpu' backend; idempotent. */
export function installWebGpuFixes(): void {
  installMatMulBroadcastFix('webgpu');
  installSoftmaxMaskFix();
}

/** Whether batch dims `dims` (left-padded with 1s to out's rank) broadcast to `out` as [1, .., 1, out suffix]. */
function broadcastsAsSuffix(dims: number[], out: number[]): boolean {
  const full = [...new Array<number>(out.length - dims.length).fill(1), ...dims];
  const first = full.findIndex((d) => d !== 1);
  return first < 0 || full.slice(first).every((d, i) => d === out[first + i]);
}

/**
 * BatchMatMul in tfjs 4.22 (webgpu, and also cpu and wasm) flattens each side's batch dims and indexes the smaller
 * one modulo its size. That is right only when a side broadcasts as [1, .., 1, suffix of the output batch]:
 * [2,1,..] x [2,3,..] silently returns wrong values (48 of 144 in spec/lib/webgpu.spec.ts) and [2,1] x [1,3] throws
 * "Size(72) must match the product of shape 2,3,4,6". This wrapper tiles such a side to the full output batch
 * first. _FusedMatMul needs none: tfjs-core flattens its batch dims before the kernel and rejects these shapes.
 */
export function installMatMulBroadcastFix(backendName: string): void {
  const stock = tf.getKernel('BatchMatMul', backendName);
  if (!stock || (stock.kernelFunc as { broadcastFix?: true }).broadcastFix) return;
  const kernelFunc = (args: Parameters<tf.KernelFunc>[0]) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const out = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const backend = args.backend as tf.KernelBackend;
    const temps: tf.TensorInfo[] = [];
    const expand = (x: tf.TensorInfo): tf.TensorInfo => {
      const dims = x.shape.slice(0, -2);
      if (broadcastsAsSuffix(dims, out)) return x;
      const full = [...new Array<number>(out.length - dims.length).fill(1), ...dims];
      const ranked = tf.getKernel('Reshape', backendName)!.kernelFunc({
        inputs: { x }, backend, attrs: { shape: [...full, ...x.shape.slice(-2)] },
      }) as tf.TensorInfo;
      const tiled = tf.getKernel('Tile', backendName)!.kernelFunc({
        inputs: { x: ranked }, backend, attrs: { reps: [...out.map((d, i) => d / full[i]!), 1, 1] },
      }) as tf.TensorInfo;
      temps.push(ranked, tiled);
      return tiled;
    };
    const result = stock.kernelFunc({ ...args, inputs: { ...args.inputs, a: expand(a), b: expand(b) } });
    for (const t of temps) backend.disposeData(t.dataId);
    return result;
  };
  tf.unregisterKernel('BatchMatMul', backendName);
  tf.registerKernel({ ...stock, kernelFunc: Object.assign(kernelFunc, { broadcastFix: true as const }) });
}

/**
 * tfjs-backend-webgpu 4.22's Softmax shader starts its row max at -3.402823e38, which is above float32's lowest
 * -3.4028235e38 (torch.finfo.min, what HF masks with). On a fully masked row (a left-padding query) no value beats
 * that start, every exp() underflows to 0 and the row comes out 0/0 = NaN where cpu and torch give a uniform row;
 * the NaN then spreads through attention. Shifting each row by its true max first (softmax is shift-invariant)
 * makes the shader's max 0; an all -Infinity row still gives NaN, as on cpu.
 */
export function installSoftmaxMaskFix(): void {
  const stock = tf.getKernel('Softmax', 'webgpu');
  if (!stock || (stock.kernelFunc as { maskFix?: true }).maskFix) return;
  const kernelFunc = (args: Parameters<tf.KernelFunc>[0]) => {
    const { logits } = args.inputs as { logits: tf.TensorInfo };
    const backend = args.backend as tf.KernelBackend;
    const dim = (args.attrs as { dim: number }).dim;
    const rowMax = tf.getKernel('Max', 'webgpu')!.kernelFunc({
      inputs: { x: logits }, backend, attrs: { reductionIndices: [dim], keepDims: true },
    }) as tf.TensorInfo;
    const shifted = tf.getKernel('Sub', 'webgpu')!.kernelFunc({
      inputs: { a: logits, b: rowMax }, backend, attrs: {},
    }) as tf.TensorInfo;
    const out = stock.kernelFunc({ ...args, inputs: { logits: shifted } });
    backend.disposeData(rowMax.dataId);
    backend.disposeData(shifted.dataId);
    return out;
  };
  tf.unregisterKernel('Softmax', 'webgpu');
  tf.registerKernel({ ...stock, kernelFunc: Object.assign(kernelFunc, { maskFix: true as const }) });
}
