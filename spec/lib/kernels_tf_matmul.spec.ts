// lib/kernels/tf_matmul.ts: the native backend's 2-D products through TensorFlow's MatMul op, against the cpu backend,
// gradients included; the other forms stay with tfjs-node's kernel. Runs wherever `glm46v setup` built the backend.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { installKernelOverrides } from '../../lib/kernels';
import { loadNativeBackend } from '../../lib/native/load';
import { readStatus } from '../../lib/native/paths';
import { expectClose } from '../helpers/expect_close';
import { compute, FORMS } from '../helpers/matmul_forms';
import { onBackend } from '../helpers/on_backend';

if (readStatus()?.ok) {
  describe('tensorflow matMul override (lib/kernels/tf_matmul.ts) against the cpu backend', () => {
    let prev: string;
    const expected = new Map<string, Float32Array[]>();
    const ops: string[] = [];

    before(async () => {
      prev = tf.getBackend();
      expect(loadNativeBackend().ok).to.equal(true);
      expect(await tf.setBackend('tensorflow')).to.equal(true);
      installKernelOverrides('tensorflow');
      const be = tf.backend() as unknown as { executeSingleOutput: (name: string, ...rest: unknown[]) => unknown };
      const stock = be.executeSingleOutput.bind(be);
      be.executeSingleOutput = (name, ...rest) => (ops.push(name), stock(name, ...rest));
      await onBackend('cpu', () => {
        for (const f of FORMS) expected.set(f.name, compute(f, true));
      });
    });
    after(async () => {
      delete (tf.backend() as unknown as Record<string, unknown>).executeSingleOutput; // back to the prototype's
      await tf.setBackend(prev);
    });

    for (const f of FORMS) {
      const twoD = f.a.length === 2 && f.b.length === 2 && !f.fused;
      it(`${f.name}: equals cpu${f.noGrad ? '' : ', gradients too'}${twoD ? ', as TF MatMul' : ''}`, () => {
        ops.length = 0;
        const ours = compute(f, false);
        const ref = expected.get(f.name)!;
        ours.forEach((x, i) => expectClose(x, ref[i]!, { atol: 1e-5, rtol: 1e-5, label: `${f.name} ${i === 0 ? 'forward' : `grad ${i - 1}`}` }));
        if (twoD) expect(ops[0], 'the forward product').to.equal('MatMul');
        if (f.a.length > 2 && f.b.length > 2 && !f.fused) expect(ops[0], 'the forward product').to.equal('BatchMatMulV2');
      });
    }
  });
}
