import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { installKernelOverrides } from '../../lib/kernels';
import { wasmBatchMatMulKernel, wasmFusedMatMulKernel, wasmMatMulFallbacks } from '../../lib/kernels/wasm_matmul';
import { expectClose } from '../helpers/expect_close';
import { compute, FORMS } from '../helpers/matmul_forms';
import { onBackend, seededTensor } from '../helpers/on_backend';

describe('wasm matMul override (lib/kernels/wasm_matmul.ts) against the cpu backend', () => {
  let prev: string;
  const expected = new Map<string, Float32Array[]>();

  before(async () => {
    prev = tf.getBackend();
    expect(await tf.setBackend('wasm')).to.equal(true);
    installKernelOverrides('wasm');
    await onBackend('cpu', () => {
      for (const f of FORMS) expected.set(f.name, compute(f, true));
    });
  });
  after(async () => {
    await tf.setBackend(prev);
  });

  it('is the kernel registered for wasm, and only for wasm', () => {
    expect(tf.getKernel('BatchMatMul', 'wasm').kernelFunc).to.equal(wasmBatchMatMulKernel);
    expect(tf.getKernel('_FusedMatMul', 'wasm').kernelFunc).to.equal(wasmFusedMatMulKernel);
    for (const backend of ['cpu', 'webgl', 'webgpu', 'tensorflow']) {
      for (const k of tf.getKernelsForBackend(backend)) {
        expect([wasmBatchMatMulKernel, wasmFusedMatMulKernel], `${k.kernelName} on ${backend}`).not.to.include(k.kernelFunc);
      }
    }
  });

  for (const f of FORMS) {
    it(`${f.name}: ${f.tA ? `[${f.a}]ᵀ` : `[${f.a}]`} x ${f.tB ? `[${f.b}]ᵀ` : `[${f.b}]`} equals cpu${f.noGrad ? '' : ', gradients too'}`, () => {
      const before = wasmMatMulFallbacks.count;
      const ours = compute(f, false);
      const ref = expected.get(f.name)!;
      expect(ours.length).to.equal(ref.length);
      ours.forEach((x, i) => expectClose(x, ref[i]!, { atol: 1e-5, rtol: 1e-5, label: `${f.name} ${i === 0 ? 'forward' : `grad ${i - 1}`}` }));
      expect(wasmMatMulFallbacks.count - before, 'calls answered by the stock kernel').to.equal(0);
    });
  }

  it('leaks no tensors and no wasm data ids across repeated calls', () => {
    const backend = tf.backend() as BackendWasm;
    const forms = FORMS.filter((f) => /attention QK|B large|folded|two-way|fused batched transposeB/.test(f.name));
    expect(forms.length).to.equal(8);
    for (const f of forms) compute(f, false);
    const tensors = tf.memory().numTensors, ids = backend.numDataIds();
    for (let i = 0; i < 3; i++) for (const f of forms) compute(f, false);
    expect(tf.memory().numTensors, 'numTensors').to.equal(tensors);
    expect(backend.numDataIds(), 'numDataIds').to.equal(ids);
  });

  it('does not reuse a weight packing for the same data reshaped to other dims (stock wasm does: diff ~6)', () => {
    const [viaReshape, viaCopy] = tf.tidy(() => {
      const w = seededTensor([8, 4], 1), x = seededTensor([3, 8], 2), y = seededTensor([3, 4], 3);
      tf.matMul(x, w); // packs w as [K=8, N=4]
      const w2 = tf.reshape(w, [4, 8]); // same data id, read as [K=4, N=8]
      return [tf.matMul(y, w2).dataSync(), tf.matMul(y, tf.tensor(w2.dataSync(), [4, 8])).dataSync()];
    });
    expectClose(viaReshape, viaCopy, { atol: 0, label: 'y @ reshape(w)' });
  });

  it('leaves non-float32 operands to the stock kernel and its error', () => {
    const a = tf.ones([2, 2], 'int32'), b = tf.ones([2, 2], 'int32');
    expect(() => tf.matMul(a, b)).to.throw(/not yet supported/);
    tf.dispose([a, b]);
  });
});
