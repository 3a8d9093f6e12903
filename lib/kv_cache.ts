// Key/value cache for incremental decoding, after mlx-lm's KVCache (models/cache.py): offset + updateAndFetch.
// Appends by concatenation; the cache owns its tensors (kept out of every tf.tidy) until dispose().
import * as tf from '@tensorflow/tfjs';

/** One attention layer's cache: keys and values [B, Hkv, S, Dh] after RoPE. */
export class KVCache {
  private keys: tf.Tensor4D | undefined;
  private values: tf.Tensor4D | undefined;
  /** tokens seen so far (S) */
  offset = 0;

  /**
   * Appends k, v [B, Hkv, L, Dh] and returns all keys and values [B, Hkv, offset + L, Dh].
   * May be called inside a tf.tidy: the returned tensors are kept (owned by the cache), the previous ones disposed.
   */
  updateAndFetch(k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    if (this.keys && this.values) {
      const [B, Hkv, , Dh] = this.keys.shape;
      if (k.shape[0] !== B || k.shape[1] !== Hkv || k.shape[3] !== Dh || !tf.util.arraysEqual(k.shape, v.shape)) {
        throw new Error(`KVCache: cannot append k ${JSON.stringify(k.shape)} / v ${JSON.stringify(v.shape)} to a cache of [${B}, ${Hkv}, ${this.offset}, ${Dh}]`);
      }
    }
    const keys = tf.keep(this.keys ? tf.concat([this.keys, k], 2) : tf.clone(k));
    const values = tf.keep(this.values ? tf.concat([this.values, v], 2) : tf.clone(v));
    this.keys?.dispose();
    this.values?.dispose();
    this.keys = keys;
    this.values = values;
    this.offset += k.shape[2];
    return [keys, values];
  }

  dispose(): void {
    this.keys?.dispose();
    this.values?.dispose();
    this.keys = this.values = undefined;
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
