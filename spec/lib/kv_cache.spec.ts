// KVCache / TextCache: concatenation along the sequence axis (values stored transposed), ownership across tf.tidy,
// disposal.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { KVCache, TextCache } from '../../lib/kv_cache';
import { expectClose } from '../helpers/expect_close';

/** [1, 2, L, 3] with value = 100*head + 10*position + dim, positions starting at `from` */
function kv(from: number, L: number, sign = 1): tf.Tensor4D {
  const v: number[] = [];
  for (let h = 0; h < 2; h++) for (let l = 0; l < L; l++) for (let d = 0; d < 3; d++) v.push(sign * (100 * h + 10 * (from + l) + d));
  return tf.tensor4d(v, [1, 2, L, 3]);
}

describe('KVCache', () => {
  it('appends along the sequence axis (values transposed to [B, Hkv, Dh, S]) and advances offset', () => {
    const c = new KVCache();
    const [k0, v0] = [kv(0, 3), kv(0, 3, -1)];
    const [k1, v1] = [kv(3, 1), kv(3, 1, -1)];
    c.updateAndFetch(k0, v0);
    expect(c.offset).to.equal(3);
    const [keys, values] = c.updateAndFetch(k1, v1);
    expect(c.offset).to.equal(4);
    expect(keys.shape).to.deep.equal([1, 2, 4, 3]);
    const [kAll, vAll] = [kv(0, 4), kv(0, 4, -1)];
    expectClose(keys, kAll, { atol: 0, label: 'keys' });
    expect(values.shape).to.deep.equal([1, 2, 3, 4]);
    const vAllT = tf.transpose(vAll, [0, 1, 3, 2]);
    expectClose(values, vAllT, { atol: 0, label: 'values' });
    vAllT.dispose();
    c.dispose();
    expect(c.offset).to.equal(0);
    [k0, v0, k1, v1, kAll, vAll].forEach((t) => t.dispose());
  });

  it('owns its tensors: they survive the tidy that appended them, the old ones are freed, dispose frees the rest', () => {
    const c = new KVCache();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      c.updateAndFetch(kv(0, 2), kv(0, 2, -1));
    });
    expect(tf.memory().numTensors).to.equal(before + 2);
    for (let i = 2; i < 12; i++) {
      tf.tidy(() => {
        const [keys] = c.updateAndFetch(kv(i, 1), kv(i, 1, -1));
        return tf.sum(keys); // used inside the tidy as attention would
      }).dispose();
    }
    expect(tf.memory().numTensors).to.equal(before + 2);
    expect(c.offset).to.equal(12);
    c.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('rejects a step whose batch, heads or head dim differ from the cache', () => {
    const c = new KVCache();
    const [k, v] = [kv(0, 2), kv(0, 2)];
    const bad = tf.zeros([1, 3, 1, 3]) as tf.Tensor4D;
    c.updateAndFetch(k, v);
    expect(() => c.updateAndFetch(bad, bad)).to.throw(/cannot append k \[1,3,1,3\].*\[1, 2, 2, 3\]/);
    c.dispose();
    [k, v, bad].forEach((t) => t.dispose());
  });
});

describe('TextCache', () => {
  it('holds one KVCache per layer and reports their offset', () => {
    const cache = new TextCache(3);
    expect(cache.layers).to.have.length(3);
    expect(cache.offset).to.equal(0);
    const [k, v] = [kv(0, 5), kv(0, 5)];
    for (const layer of cache.layers) layer.updateAndFetch(k, v);
    expect(cache.offset).to.equal(5);
    cache.dispose();
    expect(cache.offset).to.equal(0);
    [k, v].forEach((t) => t.dispose());
  });
});
