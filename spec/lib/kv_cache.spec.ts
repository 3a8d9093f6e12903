// KVCache / TextCache: appending along the sequence axis in the backend's layout (preallocated and written in place
// on the native backend, concatenated with the values transposed elsewhere), growth, ownership across tf.tidy, disposal.
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { CACHE_BLOCK, CachedKV, KVCache, TextCache } from '../../lib/kv_cache';
import { canWriteInPlace } from '../../lib/kernels/tf_inplace';
import { expectClose } from '../helpers/expect_close';

/** [1, 2, L, 3] with value = 100*head + 10*position + dim, positions starting at `from` */
function kv(from: number, L: number, sign = 1): tf.Tensor4D {
  const v: number[] = [];
  for (let h = 0; h < 2; h++) for (let l = 0; l < L; l++) for (let d = 0; d < 3; d++) v.push(sign * (100 * h + 10 * (from + l) + d));
  return tf.tensor4d(v, [1, 2, L, 3]);
}

/** The tokens a cache update holds, as [B, Hkv, length, Dh] keys and values, whatever the layout. */
function held(c: CachedKV): [tf.Tensor4D, tf.Tensor4D] {
  const [B, Hkv, , Dh] = c.keys.shape;
  const keys = tf.slice(c.keys, 0, [B, Hkv, c.length, Dh]);
  const values = c.valuesTransposed ? tf.transpose(tf.slice(c.values, 0, [B, Hkv, Dh, c.length]), [0, 1, 3, 2]) : tf.slice(c.values, 0, [B, Hkv, c.length, Dh]);
  return [keys, values];
}

describe('KVCache', () => {
  it(`appends along the sequence axis and advances offset (${canWriteInPlace() ? 'preallocated, written in place' : 'concatenated, values transposed'} on ${tf.getBackend()})`, () => {
    const c = new KVCache();
    const [k0, v0] = [kv(0, 3), kv(0, 3, -1)];
    const [k1, v1] = [kv(3, 1), kv(3, 1, -1)];
    const first = c.updateAndFetch(k0, v0);
    expect(c.offset).to.equal(3);
    // the preallocated layout keeps its tensors and writes into them; the concatenated one makes new ones
    expect(first.keys.isDisposed).to.equal(false);
    const got = c.updateAndFetch(k1, v1);
    expect(c.offset).to.equal(4);
    expect(got.length).to.equal(4);
    expect(got.valuesTransposed).to.equal(!canWriteInPlace());
    expect(got.keys.shape).to.deep.equal([1, 2, canWriteInPlace() ? CACHE_BLOCK : 4, 3]);
    const [kAll, vAll] = [kv(0, 4), kv(0, 4, -1)];
    const [keys, values] = held(got);
    expectClose(keys, kAll, { atol: 0, label: 'keys' });
    expectClose(values, vAll, { atol: 0, label: 'values' });
    if (canWriteInPlace()) {
      const rest = tf.slice(got.keys, [0, 0, 4, 0], [-1, -1, -1, -1]);
      expect(tf.max(tf.abs(rest)).dataSync()[0], 'free positions hold zeros').to.equal(0);
      rest.dispose();
    }
    c.dispose();
    expect(c.offset).to.equal(0);
    [k0, v0, k1, v1, kAll, vAll, keys, values].forEach((t) => t.dispose());
  });

  it('grows past a block, keeping every token', () => {
    const c = new KVCache();
    const n = CACHE_BLOCK + 3;
    const [k, v] = [kv(0, n - 1), kv(0, n - 1, -1)];
    c.updateAndFetch(k, v);
    const [k1, v1] = [kv(n - 1, 1), kv(n - 1, 1, -1)];
    const got = c.updateAndFetch(k1, v1);
    expect(got.length).to.equal(n);
    if (canWriteInPlace()) expect(got.keys.shape[2]).to.equal(2 * CACHE_BLOCK);
    const [keys, values] = held(got);
    const [kAll, vAll] = [kv(0, n), kv(0, n, -1)];
    expectClose(keys, kAll, { atol: 0, label: 'keys' });
    expectClose(values, vAll, { atol: 0, label: 'values' });
    c.dispose();
    [k, v, k1, v1, keys, values, kAll, vAll].forEach((t) => t.dispose());
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
        const { keys } = c.updateAndFetch(kv(i, 1), kv(i, 1, -1));
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
