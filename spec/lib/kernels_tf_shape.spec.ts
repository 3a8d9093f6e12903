// lib/kernels/tf_shape.ts (Reshape, Transpose, Mean with cached int32 operands) and lib/kernels/tf_bf16.ts (bf16 bytes
// converted by TensorFlow) on the native backend: the same values as tfjs-node's own kernels would give, and as
// the host conversion. Runs wherever `glm46v setup` built the backend.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { rowsPerChunk, tfBf16Tensor } from '../../lib/kernels/tf_bf16';
import { canWriteBf16Rows, setFusedOpsOffForTests } from '../../lib/kernels/tf_fused';
import { readStatus } from '../../lib/native/paths';
import { bf16ToF32 } from '../../lib/safetensors';
import { expectClose } from '../helpers/expect_close';
import { onBackend, onNativeBackendHooks, seeded } from '../helpers/on_backend';

if (readStatus()?.ok) {
  describe('tensorflow Reshape / Transpose / Mean overrides and bf16 conversion (lib/kernels/tf_shape.ts, tf_bf16.ts)', () => {
    onNativeBackendHooks();

    const x = seeded(2 * 3 * 4 * 5, 7);
    const compute = () => tf.tidy(() => {
      const t = tf.tensor(x, [2, 3, 4, 5]);
      const ints = tf.tensor(Array.from(x, (v) => Math.round(v * 100)), [2, 3, 4, 5], 'int32');
      return [
        tf.reshape(t, [6, 20]), tf.reshape(t, [-1]), tf.reshape(tf.slice(t, [1, 2, 3, 4], [1, 1, 1, 1]), []), tf.reshape(ints, [4, 30]),
        tf.transpose(t, [0, 2, 1, 3]), tf.transpose(ints, [3, 2, 1, 0]),
        tf.mean(t, -1, true), tf.mean(t, [0, 2]), tf.mean(t), tf.mean(ints, 1),
      ].map((r) => ({ shape: r.shape, dtype: r.dtype, data: Array.from(r.dataSync()) }));
    });

    // Reshape and Transpose move data: equal to the cpu backend's exactly. Mean is TensorFlow's own reduction (the
    // same op tfjs-node runs, without its float32 -> float32 Cast): equal to cpu's within float32 rounding.
    it('Reshape, Transpose and Mean give the values and shapes of the cpu backend, repeatedly (cached operands)', async () => {
      const ref = await onBackend('cpu', compute);
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        const got = compute();
        got.forEach((g, j) => {
          const r = ref[j]!;
          expect([g.shape, g.dtype], `result ${j}`).to.deep.equal([r.shape, r.dtype]);
          if (j < 6) expect(g.data, `result ${j}`).to.deep.equal(r.data);
          else expectClose(Float32Array.from(g.data), Float32Array.from(r.data), { atol: 1e-6, rtol: 1e-6, label: `mean ${j}` });
        });
      }
      expect(tf.memory().numTensors).to.equal(before);
    });

    // both writers: the package's op (the CPU) and TensorFlow's Bitcast, Cast and InplaceUpdate (tfjs-node-gpu)
    for (const [via, off] of [['by the package\'s op', false], ['by TensorFlow\'s ops', true]] as const) {
      describe(via, () => {
        before(() => setFusedOpsOffForTests(off));
        after(() => setFusedOpsOffForTests(false));
        it(`writes with ${off ? 'InplaceUpdate' : 'Glm46vBf16Rows'}`, () => expect(canWriteBf16Rows()).to.equal(!off));

      it(`tfBf16Tensor equals the host conversion bit for bit (NaN, inf, subnormals and signs included), ${via}`, () => {
        const u16 = new Uint16Array(4096);
        for (let i = 0; i < u16.length; i++) u16[i] = (i * 40503 + 17) & 0xffff;
        u16.set([0x7fc0, 0xff80, 0x7f80, 0x0001, 0x8001, 0x8000, 0x0000], 0);
        const bytes = new Uint8Array(u16.buffer);
        const reader = (b: Uint8Array) => (offset: number, length: number) => b.subarray(offset, offset + length);
        const t = tfBf16Tensor([64, 64], reader(bytes))!;
        expect(t.shape).to.deep.equal([64, 64]);
        expect(t.dtype).to.equal('float32');
        const got = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
        const want = new Uint32Array(bf16ToF32(u16).buffer);
        t.dispose();
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).to.equal(true);
        expect(tfBf16Tensor([4095], reader(bytes.subarray(2))), 'odd: the host converts').to.equal(undefined);
        expect(tfBf16Tensor([2046], reader(bytes.subarray(2))), 'unaligned: the host converts').to.equal(undefined);
      });

      it(`tfBf16Tensor fills a large matrix chunk by chunk in place, bit for bit, reading one chunk at a time, ${via}`, () => {
        const u16 = new Uint16Array(72 * 32 * 2);
        for (let i = 0; i < u16.length; i++) u16[i] = (i * 40503 + 17) & 0xffff;
        const bytes = new Uint8Array(u16.buffer);
        const before = tf.memory().numTensors;
        const reads: number[][] = [];
        const scratch = new Uint8Array(1024);
        const t = tfBf16Tensor([72, 32, 2], (offset, length) => {
          reads.push([offset, length]);
          scratch.set(bytes.subarray(offset, offset + length)); // reused for every chunk, as the checkpoint reader does
          return scratch.subarray(0, length);
        }, 1024)!;
        expect(t.shape).to.deep.equal([72, 32, 2]);
        expect(reads, '8 rows of 128 bytes per chunk').to.deep.equal([...Array(9).keys()].map((i) => [1024 * i, 1024]));
        const got = new Uint32Array((t.dataSync() as Float32Array).slice().buffer);
        const want = new Uint32Array(bf16ToF32(u16).buffer);
        t.dispose();
        expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).to.equal(true);
        expect(tf.memory().numTensors).to.equal(before);
      });
      });
    }

    it('rowsPerChunk: the largest divisor of the rows that fits a chunk, or undefined to convert whole', () => {
      expect(rowsPerChunk(151552, 4096, 64 << 20), "GLM's vocabulary: 32 chunks of 4736 rows").to.equal(4736);
      expect(rowsPerChunk(13696, 4096, 64 << 20), 'a down projection: 2 chunks').to.equal(6848);
      expect(rowsPerChunk(72, 64, 1024)).to.equal(8);
      expect(rowsPerChunk(67, 64, 1024), 'a prime row count: one row a chunk, still 1/16 of a chunk or more').to.equal(1);
      expect(rowsPerChunk(67, 64, 4096), 'rows of under 1/16 of a chunk: whole').to.equal(undefined);
      expect(rowsPerChunk(8, 64, 1024), 'fits one chunk').to.equal(undefined);
      expect(rowsPerChunk(72, 63, 1024), 'odd columns').to.equal(undefined);
    });
  });
}
