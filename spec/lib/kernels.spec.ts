import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { installKernelOverrides } from '../../lib/kernels';
import { wasmIdentityKernel } from '../../lib/kernels/wasm_identity';
import { wasmUnsortedSegmentSumKernel } from '../../lib/kernels/wasm_segment_sum';
import { zeroGradKernels } from '../../lib/kernels/zero_grads';
import { expectClose, expectEqualInts } from '../helpers/expect_close';
import { onBackend, seededTensor } from '../helpers/on_backend';

const ids = (values: number[]) => tf.tensor1d(values, 'int32');

/** Embedding lookup and its gradient for a fixed upstream dy (gather's gradient is UnsortedSegmentSum). */
function embeddingGrad(): Float32Array[] {
  return tf.tidy(() => {
    const weight = seededTensor([10, 4], 1);
    const f = (w: tf.Tensor) => tf.gather(w, ids([1, 3, 3, 7, 0, 3]));
    const y = f(weight);
    const [g] = tf.grads(f)([weight], seededTensor(y.shape, 2));
    return [y.dataSync() as Float32Array, g!.dataSync() as Float32Array];
  });
}

/** unsortedSegmentSum with ids outside [0, numSegments) and a repeated id, on a [6, 2, 3] input. */
function segmentSum(dtype: 'float32' | 'int32'): Float32Array | Int32Array {
  return tf.tidy(() => {
    const x = tf.cast(tf.mul(seededTensor([6, 2, 3], 3), 10), dtype);
    return tf.unsortedSegmentSum(x, ids([2, -1, 0, 2, 5, 4]), 5).dataSync() as Float32Array | Int32Array;
  });
}

/** Gradient through tf.where(greater(x, 0), x, 0.1x), i.e. leaky relu: 1 where x > 0, 0.1 elsewhere. */
function whereGreaterGrad(): Float32Array {
  return tf.tidy(() => {
    const f = (x: tf.Tensor) => tf.where(tf.greater(x, 0), x, tf.mul(x, 0.1));
    return tf.grads(f)([seededTensor([3, 4], 4)])[0]!.dataSync() as Float32Array;
  });
}

describe('lib/kernels: installKernelOverrides', () => {
  it('installs kernels for wasm only: cpu, tensorflow and webgpu get none', () => {
    for (const backend of ['cpu', 'tensorflow', 'webgpu'] as const) {
      const before = tf.getKernelsForBackend(backend).map((k) => k.kernelFunc);
      installKernelOverrides(backend);
      expect(tf.getKernelsForBackend(backend).map((k) => k.kernelFunc), backend).to.deep.equal(before);
    }
    expect(tf.getKernel('UnsortedSegmentSum', 'cpu').kernelFunc).not.to.equal(wasmUnsortedSegmentSumKernel);
    expect(tf.getKernel('Identity', 'cpu').kernelFunc).not.to.equal(wasmIdentityKernel);
  });

  it('registers each zero gradient once, for the comparison kernels tfjs left without one', () => {
    installKernelOverrides('cpu');
    expect(zeroGradKernels).to.include.members(['Equal', 'NotEqual', 'Greater', 'Less', 'LessEqual', 'LogicalAnd', 'LogicalOr', 'LogicalNot']);
    expect(zeroGradKernels, 'GreaterEqual and IsNan have tfjs gradients').not.to.include.members(['GreaterEqual', 'IsNan']);
    expect(new Set(zeroGradKernels).size).to.equal(zeroGradKernels.length);
    for (const k of zeroGradKernels) expect(tf.getGradient(k), k).not.to.equal(undefined);
  });
});

describe('lib/kernels on wasm against the cpu backend', () => {
  let prev: string;
  const ref: { embedding?: Float32Array[]; sumF?: Float32Array | Int32Array; sumI?: Float32Array | Int32Array; where?: Float32Array } = {};

  before(async () => {
    prev = tf.getBackend();
    expect(await tf.setBackend('wasm')).to.equal(true);
    installKernelOverrides('wasm');
    await onBackend('cpu', () => {
      ref.embedding = embeddingGrad();
      ref.sumF = segmentSum('float32');
      ref.sumI = segmentSum('int32');
      ref.where = whereGreaterGrad();
    });
  });
  after(async () => {
    await tf.setBackend(prev);
  });

  it('UnsortedSegmentSum is registered for wasm by the overrides', () => {
    expect(tf.getKernel('UnsortedSegmentSum', 'wasm').kernelFunc).to.equal(wasmUnsortedSegmentSumKernel);
  });

  it('Identity shares its input\'s data: values kept until the last sharer is disposed, no copy, no leak', () => {
    expect(tf.getKernel('Identity', 'wasm').kernelFunc).to.equal(wasmIdentityKernel);
    const backend = tf.backend() as BackendWasm;
    const ids0 = backend.numDataIds(), bytes0 = tf.memory().numBytes, bufs0 = tf.memory().numDataBuffers;
    const x = tf.tensor2d([[1.5, -2], [3, 4.25]]);
    const y = tf.clone(x); // tf.clone runs Identity
    expect(y.dataId, 'same data id').to.equal(x.dataId);
    expect(backend.numDataIds() - ids0, 'one wasm buffer for both').to.equal(1);
    expect(tf.memory().numDataBuffers - bufs0, 'the engine sees one buffer').to.equal(1);
    x.dispose();
    expect(Array.from(y.dataSync()), 'y after x is disposed').to.deep.equal([1.5, -2, 3, 4.25]);
    const i0 = tf.tensor1d([7, -8], 'int32'), b0 = tf.tensor1d([true, false], 'bool');
    const i = tf.clone(i0), b = tf.clone(b0);
    tf.dispose([i0, b0]);
    expect([...i.dataSync(), ...b.dataSync()]).to.deep.equal([7, -8, 1, 0]);
    expect([i.dtype, b.dtype]).to.deep.equal(['int32', 'bool']);
    tf.dispose([y, i, b]);
    expect(backend.numDataIds(), 'every buffer freed').to.equal(ids0);
    expect(tf.memory().numBytes).to.equal(bytes0);
  });

  it('values saved for the backward pass (cloned through Identity) give cpu\'s gradients', async () => {
    const run = () => tf.tidy(() => {
      const a = seededTensor([5, 4], 11), w = seededTensor([4, 3], 12);
      const f = (a: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(tf.exp(tf.matMul(a, w)), tf.sigmoid(tf.matMul(a, w))));
      const { value, grads } = tf.valueAndGrads(f)([a, w]);
      return [value.dataSync(), grads[0]!.dataSync(), grads[1]!.dataSync()].map((v) => Float32Array.from(v));
    });
    const cpu = await onBackend('cpu', run);
    const ours = run();
    ours.forEach((v, k) => expectClose(v, cpu[k]!, { atol: 1e-5, rtol: 1e-5, label: ['value', 'd/da', 'd/dw'][k]! }));
  });

  it('gradient of tf.gather (embedding) equals cpu, repeated ids summed', () => {
    const [y, g] = embeddingGrad();
    expectClose(y!, ref.embedding![0]!, { atol: 0, label: 'gather forward' });
    expectClose(g!, ref.embedding![1]!, { atol: 1e-6, rtol: 1e-6, label: 'gather gradient' });
  });

  it('unsortedSegmentSum equals cpu for float32 and int32, dropping ids outside [0, numSegments)', () => {
    expectClose(segmentSum('float32'), ref.sumF!, { atol: 1e-6, rtol: 1e-6, label: 'float32' });
    expectEqualInts(segmentSum('int32'), ref.sumI!, 'int32');
    const hand = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d([[1, 2], [3, 4], [5, 6]]), ids([1, 1, 7]), 3).dataSync());
    expect(Array.from(hand)).to.deep.equal([0, 0, 4, 6, 0, 0]);
  });

  it('names the shapes when segmentIds do not prefix x', () => {
    const x = tf.ones([4, 2]), s = ids([0, 1, 2]);
    expect(() => tf.unsortedSegmentSum(x, s, 3)).to.throw(/segmentIds.*\[3\].*x \[4,2\]/);
    tf.dispose([x, s]);
  });

  it('tf.where(greater(x, 0), …) differentiates on the tape and equals cpu', () => {
    const g = whereGreaterGrad();
    expectClose(g, ref.where!, { atol: 0, label: 'where/greater gradient' });
    const x = seededTensor([3, 4], 4).dataSync();
    expectClose(g, Array.from(x, (v) => (v > 0 ? 1 : 0.1)), { atol: 1e-7, label: 'leaky-relu slope' });
  });

  it('every zero-gradient kernel gives zeros shaped like its inputs, broadcast scalar included', () => {
    const grads = tf.tidy(() => {
      const x = seededTensor([2, 3], 5), t = tf.scalar(0.25);
      const uses: Record<string, (x: tf.Tensor, t: tf.Tensor) => tf.Tensor> = {
        Equal: (x, t) => tf.equal(x, t), NotEqual: (x, t) => tf.notEqual(x, t), Greater: (x, t) => tf.greater(x, t),
        Less: (x, t) => tf.less(x, t), LessEqual: (x, t) => tf.lessEqual(x, t),
        LogicalAnd: (x, t) => tf.logicalAnd(tf.greater(x, t), tf.less(x, t)),
        LogicalOr: (x, t) => tf.logicalOr(tf.greater(x, t), tf.less(x, t)),
        LogicalXor: (x, t) => tf.logicalXor(tf.greater(x, t), tf.less(x, t)),
        LogicalNot: (x, t) => tf.logicalNot(tf.greater(x, t)),
      };
      return zeroGradKernels.filter((k) => uses[k]).map((k) => {
        // cast then multiply keeps the comparison on the tape: d/dx of x * cast(cmp) is cast(cmp) + 0.
        const [gx, gt] = tf.grads((x: tf.Tensor, t: tf.Tensor) => tf.sum(tf.mul(x, tf.cast(uses[k]!(x, t), 'float32'))))([x, t]);
        const mask = tf.cast(uses[k]!(x, t), 'float32');
        return { k, gx: gx!.dataSync(), mask: mask.dataSync(), gt: gt!.dataSync(), gtShape: gt!.shape };
      });
    });
    expect(grads.length).to.be.greaterThan(7);
    for (const { k, gx, mask, gt, gtShape } of grads) {
      expectClose(gx, mask, { atol: 0, label: `${k}: d/dx` });
      expect(gtShape, `${k}: d/dt shape`).to.deep.equal([]);
      expect(Array.from(gt), `${k}: d/dt`).to.deep.equal([0]);
    }
  });

  it('leaks no tensors and no wasm data ids across repeated gradients', () => {
    const backend = tf.backend() as BackendWasm;
    embeddingGrad();
    whereGreaterGrad();
    const tensors = tf.memory().numTensors, dataIds = backend.numDataIds();
    for (let i = 0; i < 3; i++) {
      embeddingGrad();
      whereGreaterGrad();
      segmentSum('float32');
    }
    expect(tf.memory().numTensors, 'numTensors').to.equal(tensors);
    expect(backend.numDataIds(), 'numDataIds').to.equal(dataIds);
  });
});
