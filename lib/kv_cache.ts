// Key/value cache for incremental decoding, after mlx-lm's KVCache (models/cache.py): offset + updateAndFetch.
// Appends by concatenation; the cache owns its tensors (kept out of every tf.tidy) until dispose(). The values are
// kept transposed, [B, Hkv, Dh, S], so that decoding reads them as matMul rows (layers/ops/attention.ts cachedAttention).
import * as tf from '@tensorflow/tfjs';

/** One attention layer's cache: keys [B, Hkv, S, Dh] after RoPE, values transposed [B, Hkv, Dh, S]. */
export class KVCache {
  private keys: tf.Tensor4D | undefined;
  private valuesT: tf.Tensor4D | undefined;
  /** tokens seen so far (S) */
  offset = 0;

  /**
   * Appends k, v [B, Hkv, L, Dh] and returns all keys [B, Hkv, offset + L, Dh] and values [B, Hkv, Dh, offset + L].
   * May be called inside a tf.tidy: the returned tensors are kept (owned by the cache), the previous ones disposed.
   */
  updateAndFetch(k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    if (this.keys) {
      const [B, Hkv, , Dh] = this.keys.shape;
      if (k.shape[0] !== B || k.shape[1] !== Hkv || k.shape[3] !== Dh || !tf.util.arraysEqual(k.shape, v.shape)) {
        throw new Error(`KVCache: cannot append k ${JSON.stringify(k.shape)} / v ${JSON.stringify(v.shape)} to a cache of [${B}, ${Hkv}, ${this.offset}, ${Dh}]`);
      }
    }
    const keys = tf.keep(this.keys ? tf.concat([this.keys, k], 2) : tf.clone(k));
    const valuesT = tf.keep(tf.tidy(() => {
      const vT = tf.transpose(v, [0, 1, 3, 2]);
      return this.valuesT ? tf.concat([this.valuesT, vT], 3) : vT;
    }));
    this.keys?.dispose();
    this.valuesT?.dispose();
    this.keys = keys;
    this.valuesT = valuesT;
    this.offset += k.shape[2];
    return [keys, valuesT];
  }

  dispose(): void {
    this.keys?.dispose();
    this.valuesT?.dispose();
    this.keys = this.valuesT = undefined;
    this.offset = 0;
  }
}

/** The text decoder's cache: one KVCache per decoder layer, all at the same offset. */
export class TextCache {
  readonly layers: KVCache[];

  constructor(numLayers: number) {
    this.layers = Array.from({ length: numLayers }, () => new KVCache());
  }

  /** tokens already in the cache (the `past` of the next forward) */
  get offset(): number {
    return this.layers[0]?.offset ?? 0;
  }

  dispose(): void {
    for (const c of this.layers) c.dispose();
  }
}
