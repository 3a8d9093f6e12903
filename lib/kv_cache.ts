// Key/value cache for incremental decoding, after mlx-lm's KVCache (models/cache.py): offset + updateAndFetch.
// The cache owns its tensors (kept out of every tf.tidy) until dispose(). Two layouts, by backend:
// - native (tensorflow): preallocated, [B, Hkv, C, Dh] for keys and values, C a multiple of 256 positions, each step
//   written in place (lib/kernels/tf_inplace.ts). Attention reads all C positions, the ones past `length` masked out
//   (they hold zeros): appending a token no longer copies the cache, as concatenation does.
// - elsewhere: appended by concatenation, the values kept transposed, [B, Hkv, Dh, S], so that decoding reads them as
//   matMul rows (wasm's products pack their right-hand side per call; layers/ops/attention.ts cachedAttention).
// Rows can be gathered out, left-padded and appended, so a server's running batch takes and drops requests.
import * as tf from '@tensorflow/tfjs';
import { canWriteInPlace, writePositions } from './kernels/tf_inplace';

/** What attention reads from a cache after an update. */
export interface CachedKV {
  /** [B, Hkv, C, Dh] */
  keys: tf.Tensor4D;
  /** [B, Hkv, Dh, C] when `valuesTransposed`, else [B, Hkv, C, Dh] */
  values: tf.Tensor4D;
  valuesTransposed: boolean;
  /** positions holding tokens: the first `length` of the C (C > length only in a preallocated cache) */
  length: number;
}

/** A preallocated cache grows by this many positions at a time. */
export const CACHE_BLOCK = 256;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** One attention layer's cache: keys after RoPE and values, [B, Hkv, S, Dh] as given to updateAndFetch. */
export class KVCache {
  private keys: tf.Tensor4D | undefined;
  /** transposed [B, Hkv, Dh, S] when appended by concatenation; [B, Hkv, C, Dh] when preallocated */
  private values: tf.Tensor4D | undefined;
  private preallocated = false;
  /** tokens seen so far (S) */
  offset = 0;

  /**
   * Appends k, v [B, Hkv, L, Dh] and returns what attention reads (see CachedKV). May be called inside a tf.tidy: the
   * returned tensors are kept (owned by the cache), the previous ones disposed or written over.
   */
  updateAndFetch(k: tf.Tensor4D, v: tf.Tensor4D): CachedKV {
    if (this.keys) {
      const [B, Hkv, , Dh] = this.keys.shape;
      if (k.shape[0] !== B || k.shape[1] !== Hkv || k.shape[3] !== Dh || !tf.util.arraysEqual(k.shape, v.shape)) {
        throw new Error(`KVCache: cannot append k ${JSON.stringify(k.shape)} / v ${JSON.stringify(v.shape)} to a cache of [${B}, ${Hkv}, ${this.offset}, ${Dh}]`);
      }
    } else {
      this.preallocated = canWriteInPlace() && k.dtype === 'float32';
    }
    const L = k.shape[2];
    if (this.preallocated) {
      if (!this.keys || this.offset + L > this.keys.shape[2]) this.reserve(this.offset + L, k);
      writePositions(this.keys!, k, this.offset);
      writePositions(this.values!, v, this.offset);
    } else {
      const keys = tf.keep(this.keys ? tf.concat([this.keys, k], 2) : tf.clone(k));
      const values = tf.keep(tf.tidy(() => {
        const vT = tf.transpose(v, [0, 1, 3, 2]);
        return this.values ? tf.concat([this.values, vT], 3) : vT;
      }));
      this.replace(keys, values, this.offset);
    }
    this.offset += L;
    return { keys: this.keys!, values: this.values!, valuesTransposed: !this.preallocated, length: this.offset };
  }

  /** batch rows held (0 when empty) */
  get batchSize(): number {
    return this.keys?.shape[0] ?? 0;
  }

  /** A preallocated cache of `like`'s batch, heads and head dim: room for `n` positions (whole blocks), zeros after the tokens. */
  private reserve(n: number, like: tf.Tensor4D): void {
    const c = roundUp(n, CACHE_BLOCK);
    if (!this.keys) {
      const [B, Hkv, , Dh] = like.shape;
      this.replace(tf.keep(tf.zeros([B, Hkv, c, Dh])), tf.keep(tf.zeros([B, Hkv, c, Dh])), 0);
      return;
    }
    const pad = c - this.keys.shape[2];
    this.replace(tf.keep(tf.pad(this.keys, [[0, 0], [0, 0], [0, pad], [0, 0]])), tf.keep(tf.pad(this.values!, [[0, 0], [0, 0], [0, pad], [0, 0]])), this.offset);
  }

  /** Keys and values of the tokens held, [B, Hkv, S, Dh] each (new tensors; the caller disposes them). */
  private held(): [tf.Tensor4D, tf.Tensor4D] {
    const [B, Hkv, , Dh] = this.keys!.shape, S = this.offset;
    if (this.preallocated) return [tf.slice(this.keys!, 0, [B, Hkv, S, Dh]), tf.slice(this.values!, 0, [B, Hkv, S, Dh])];
    return [tf.clone(this.keys!), tf.transpose(this.values!, [0, 1, 3, 2])];
  }

  /** Holds keys and values [B, Hkv, S, Dh] (taken over) as this cache's tokens, in its layout. */
  private hold(keys: tf.Tensor4D, values: tf.Tensor4D): void {
    const S = keys.shape[2];
    if (this.preallocated) {
      const pad = roundUp(Math.max(S, 1), CACHE_BLOCK) - S;
      this.replace(tf.keep(tf.pad(keys, [[0, 0], [0, 0], [0, pad], [0, 0]])), tf.keep(tf.pad(values, [[0, 0], [0, 0], [0, pad], [0, 0]])), S);
      tf.dispose([keys, values]);
    } else {
      this.replace(keys, tf.keep(tf.transpose(values, [0, 1, 3, 2])), S);
      values.dispose();
    }
  }

  /**
   * Keeps the batch rows `rows` (in that order) and drops the first `from` positions, which no kept row attends to;
   * the old tensors are freed at once (a server drops a finished or disconnected row's memory this way).
   */
  keepRows(rows: number[], from = 0): void {
    if (!this.keys || !this.values) return;
    const [B] = this.keys.shape, S = this.offset;
    if (rows.some((r) => !Number.isInteger(r) || r < 0 || r >= B) || from < 0 || from > S) {
      throw new Error(`KVCache: cannot keep rows ${JSON.stringify(rows)} from position ${from} of a cache of ${B} rows and ${S} positions`);
    }
    const [keys, values] = tf.tidy(() => {
      const idx = tf.tensor1d(rows, 'int32');
      return this.held().map((t) => tf.keep(tf.gather(t, idx, 0).slice([0, 0, from, 0], [-1, -1, -1, -1]))) as [tf.Tensor4D, tf.Tensor4D];
    });
    this.hold(keys, values);
  }

  /** Puts `n` zero positions in front of every row: left padding, to be masked out (attention mask 0). */
  padLeft(n: number): void {
    if (!this.keys || !this.values || n === 0) return;
    const [keys, values] = tf.tidy(() => this.held().map((t) => tf.keep(tf.pad(t, [[0, 0], [0, 0], [n, 0], [0, 0]]))) as [tf.Tensor4D, tf.Tensor4D]);
    this.hold(keys, values);
  }

  /** Appends the rows of `other` (same offset, heads and head dim) after this cache's rows; `other` is emptied. */
  appendRows(other: KVCache): void {
    if (!other.keys || !other.values) return;
    if (!this.keys || !this.values) {
      this.preallocated = other.preallocated;
      this.replace(other.keys, other.values, other.offset);
    } else {
      const [, Hkv, , Dh] = this.keys.shape;
      const [, oHkv, , oDh] = other.keys.shape;
      if (Hkv !== oHkv || this.offset !== other.offset || Dh !== oDh) {
        throw new Error(`KVCache: cannot append rows of [*, ${oHkv}, ${other.offset}, ${oDh}] to a cache of [*, ${Hkv}, ${this.offset}, ${Dh}]`);
      }
      const [keys, values] = tf.tidy(() => {
        const [a, b] = [this.held(), other.held()];
        return [tf.keep(tf.concat([a[0], b[0]], 0)), tf.keep(tf.concat([a[1], b[1]], 0))] as [tf.Tensor4D, tf.Tensor4D];
      });
      this.hold(keys, values);
      other.dispose();
    }
    other.keys = other.values = undefined;
    other.offset = 0;
  }

  private replace(keys: tf.Tensor4D, values: tf.Tensor4D, offset: number): void {
    if (this.keys !== keys) this.keys?.dispose();
    if (this.values !== values) this.values?.dispose();
    this.keys = keys;
    this.values = values;
    this.offset = offset;
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
