// UnsortedSegmentSum for tfjs-backend-wasm 4.22, which lacks it (tfjs_notes.md §2.4, A.4). It is the gradient of
// tf.gather, so without it embedding training throws on wasm. Semantics of tf.math.unsorted_segment_sum:
// out[s, ...] = sum of x[i, ...] over the i with segmentIds[i] == s; ids outside [0, numSegments) are dropped.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = args.attrs as { numSegments: number };
  const backend = args.backend;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`UnsortedSegmentSum (wasm): x must be float32 or int32, got ${x.dtype}`);
  }
  const idsShape = segmentIds.shape;
  if (segmentIds.dtype !== 'int32' || idsShape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `UnsortedSegmentSum (wasm): segmentIds must be int32 with a shape prefixing x's, got ${segmentIds.dtype} ` +
        `[${idsShape}] for x [${x.shape}]`,
    );
  }
  const inner = tf.util.sizeFromShape(x.shape.slice(idsShape.length));
  const nIds = tf.util.sizeFromShape(idsShape);
  const out = backend.makeOutput([numSegments, ...x.shape.slice(idsShape.length)], x.dtype);
  // Views only after the allocation above: growing the wasm heap detaches views taken earlier.
  const xs = backend.typedArrayFromHeap(x);
  const ids = backend.typedArrayFromHeap(segmentIds);
  const o = backend.typedArrayFromHeap(out);
  o.fill(0);
  for (let i = 0; i < nIds; i++) {
    const s = ids[i]!;
    if (s < 0 || s >= numSegments) continue;
    const src = i * inner, dst = s * inner;
    for (let j = 0; j < inner; j++) o[dst + j] += xs[src + j]!;
  }
  return out;
}

export const wasmUnsortedSegmentSumKernel = unsortedSegmentSum as unknown as tf.KernelFunc;

/** Registers the kernel for wasm unless one is there already (a later tfjs may ship its own). */
export function installWasmSegmentSum(): void {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return;
  tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: wasmUnsortedSegmentSumKernel });
}
