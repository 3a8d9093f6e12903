// Key/value cache for incremental decoding, after mlx-lm's KVCache (models/cache.py): offset + updateAndFetch.
// Appends by concatenation; the cache owns its tensors (kept out of every tf.tidy) until dispose(). The values are
// kept transposed, [B, Hkv, Dh, S], so that decoding reads them as matMul rows (layers/ops/attention.ts cachedAttention).
// Rows can be gathered out, left-padded and appended, so a server's running batch takes and drops requests.
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

  /** batch rows held (0 when empty) */
  get batchSize(): number {
    return this.keys?.shape[0] ?? 0;
  }

  /**
   * Keeps the batch rows `rows` (in that order) and drops the first `from` positions, which no kept row attends to;
   * the old tensors are freed at once (a server drops a finished or disconnected row's memory this way).
   */
  keepRows(rows: number[], from = 0): void {
    if (!this.keys || !this.valuesT) return;
    const [B, , S] = this.keys.shape;
    if (rows.some((r) => !Number.isInteger(r) || r < 0 || r >= B) || from < 0 || from > S) {
      throw new Error(`KVCache: cannot keep rows ${JSON.stringify(rows)} from position ${from} of a cache of ${B} rows and ${S} positions`);
    }
    const idx = tf.tensor1d(rows, 'int32');
    const keys = tf.keep(tf.tidy(() => tf.gather(this.keys!, idx, 0).slice([0, 0, from, 0], [-1, -1, -1, -1])));
    const valuesT = tf.keep(tf.tidy(() => tf.gather(this.valuesT!, idx, 0).slice([0, 0, 0, from], [-1, -1, -1, -1])));
    idx.dispose();
    this.replace(keys, valuesT, S - from);
  }

  /** Puts `n` zero positions in front of every row: left padding, to be masked out (attention mask 0). */
  padLeft(n: number): void {
    if (!this.keys || !this.valuesT || n === 0) return;
    const keys = tf.keep(tf.pad(this.keys, [[0, 0], [0, 0], [n, 0], [0, 0]]));
    const valuesT = tf.keep(tf.pad(this.valuesT, [[0, 0], [0, 0], [0, 0], [n, 0]]));
    this.replace(keys, valuesT, this.offset + n);
  }

  /** Appends the rows of `other` (same offset, heads and head dim) after this cache's rows; `other` is emptied. */
  appendRows(other: KVCache): void {
    if (!other.keys || !other.valuesT) return;
    if (!this.keys || !this.valuesT) {
      this.replace(other.keys, other.valuesT, other.offset);
    } else {
      const [, Hkv, S, Dh] = this.keys.shape;
      const [, oHkv, oS, oDh] = other.keys.shape;
      if (Hkv !== oHkv || S !== oS || Dh !== oDh) {
        throw new Error(`KVCache: cannot append rows of [*, ${oHkv}, ${oS}, ${oDh}] to a cache of [*, ${Hkv}, ${S}, ${Dh}]`);
      }
      this.replace(tf.keep(tf.concat([this.keys, other.keys], 0)), tf.keep(tf.concat([this.valuesT, other.valuesT], 0)), S);
      other.dispose();
    }
    other.keys = other.valuesT = undefined;
    other.offset = 0;
  }

  private replace(keys: tf.Tensor4D, valuesT: tf.Tensor4D, offset: number): void {
    if (this.keys !== keys) this.keys?.dispose();
    if (this.valuesT !== valuesT) this.valuesT?.dispose();
    this.keys = keys;
    this.valuesT = valuesT;
    this.offset = offset;
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

  /** batch rows held */
  get batchSize(): number {
    return this.layers[0]?.batchSize ?? 0;
  }

  /** See KVCache.keepRows: every layer keeps these rows from position `from` on. */
  keepRows(rows: number[], from = 0): void {
    for (const c of this.layers) c.keepRows(rows, from);
  }

  /** See KVCache.padLeft. */
  padLeft(n: number): void {
    for (const c of this.layers) c.padLeft(n);
  }

  /** Appends `other`'s rows (at the same offset: left-pad the shorter first); `other` is emptied. */
  appendRows(other: TextCache): void {
    if (other.layers.length !== this.layers.length) throw new Error(`TextCache: cannot append a cache of ${other.layers.length} layers to one of ${this.layers.length}`);
    this.layers.forEach((c, i) => c.appendRows(other.layers[i]!));
  }

  dispose(): void {
    for (const c of this.layers) c.dispose();
  }
}
