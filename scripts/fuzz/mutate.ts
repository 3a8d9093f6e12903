// Seeded mutations for the fuzzer: generic byte-level ones (bit flips, truncations, inserted, repeated and deleted
// segments) and format-aware ones that put huge or odd numbers where a header declares sizes (PNG IHDR, JPEG SOF,
// safetensors shapes and offsets, config values). No fuzzing library for Node takes a seed and reproduces one input
// from (seed, index) without running the ones before it, which is what reporting and minimizing need.
import * as zlib from 'zlib';
import { mulberry32 } from '../../lib/rng';

/** The generator of input `index` of a run seeded `seed`, independent of every other input. */
export function inputRng(seed: number, index: number): () => number {
  const r = mulberry32((Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
  r();
  return r;
}

export type Rng = () => number;
export const randInt = (r: Rng, n: number) => Math.floor(r() * n);
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[randInt(r, xs.length)]!;

/** Sizes that break arithmetic: 0, 1, around 2^15/16/31/32, and random large values. */
const HUGE_U32 = [0, 1, 2, 255, 256, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 100000, 1000000];
const HUGE_U16 = [0, 1, 2, 7, 8, 9, 255, 256, 0x7fff, 0x8000, 0xfffe, 0xffff, 1000, 10000, 30000];
const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x10, 0x40];

const MAX_GROWTH = 64 * 1024;

function bitFlips(r: Rng, b: Uint8Array): Uint8Array {
  const out = b.slice();
  for (let n = 1 + randInt(r, 8); n > 0 && out.length; n--) out[randInt(r, out.length)]! ^= 1 << randInt(r, 8);
  return out;
}

function byteSets(r: Rng, b: Uint8Array): Uint8Array {
  const out = b.slice();
  for (let n = 1 + randInt(r, 4); n > 0 && out.length; n--) out[randInt(r, out.length)] = r() < 0.7 ? pick(r, INTERESTING_BYTES) : randInt(r, 256);
  return out;
}

function truncate(r: Rng, b: Uint8Array): Uint8Array {
  return b.slice(0, randInt(r, b.length));
}

function insertSegment(r: Rng, b: Uint8Array): Uint8Array {
  const len = 1 + randInt(r, 64), at = randInt(r, b.length + 1);
  const seg = Uint8Array.from({ length: len }, () => (r() < 0.5 ? pick(r, INTERESTING_BYTES) : randInt(r, 256)));
  return concat(b.subarray(0, at), seg, b.subarray(at));
}

/** Copies a segment of the input (a chunk, a marker, a table) and inserts it 1 to 16 times somewhere. */
function repeatSegment(r: Rng, b: Uint8Array): Uint8Array {
  if (!b.length) return b;
  const from = randInt(r, b.length), len = 1 + randInt(r, Math.min(256, b.length - from));
  const times = 1 + randInt(r, 16), at = randInt(r, b.length + 1);
  const seg = b.subarray(from, from + len);
  return concat(b.subarray(0, at), ...new Array<Uint8Array>(times).fill(seg), b.subarray(at));
}

function deleteSegment(r: Rng, b: Uint8Array): Uint8Array {
  if (!b.length) return b;
  const from = randInt(r, b.length), len = 1 + randInt(r, Math.min(128, b.length - from));
  return concat(b.subarray(0, from), b.subarray(from + len));
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Truncation listed once and in-place changes twice: a truncated file ends every parser early, alike. */
export const GENERIC = [bitFlips, bitFlips, byteSets, byteSets, truncate, insertSegment, repeatSegment, deleteSegment];

/** 1 to 3 mutations, generic or the format's own (`special`), stacked; the result never grows past seed + 64 KiB. */
export function mutate(r: Rng, seed: Uint8Array, special: Array<(r: Rng, b: Uint8Array) => Uint8Array>): Uint8Array {
  let b = seed;
  for (let n = 1 + randInt(r, 3); n > 0; n--) {
    const m = special.length && r() < 0.35 ? pick(r, special) : pick(r, GENERIC);
    b = m(r, b);
  }
  return b.length > seed.length + MAX_GROWTH ? b.subarray(0, seed.length + MAX_GROWTH) : b;
}

// ---- PNG: IHDR fields, with the chunk CRCs recomputed so that the decoder gets past its CRC check.

const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(b: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 255]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Rewrites every complete chunk's CRC (a mutation inside a chunk then reaches the chunk's parser). */
export function fixPngCrcs(b: Uint8Array): Uint8Array {
  const out = b.slice(), view = new DataView(out.buffer);
  for (let p = 8; p + 12 <= out.length;) {
    const len = view.getUint32(p);
    if (p + 12 + len > out.length) break;
    view.setUint32(p + 8 + len, crc32(out.subarray(p + 4, p + 8 + len)));
    p += 12 + len;
  }
  return out;
}

function pngHeader(r: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 33) return b;
  const out = b.slice(), view = new DataView(out.buffer);
  const field = randInt(r, 5);
  if (field < 2) view.setUint32(16 + 4 * field, r() < 0.7 ? pick(r, HUGE_U32) : randInt(r, 1 << 16));
  else if (field === 2) out[24] = pick(r, [1, 2, 4, 8, 16, 3, 0, 32]); // bit depth
  else if (field === 3) out[25] = pick(r, [0, 2, 3, 4, 6, 1, 7]); // colour type
  else out[28] = out[28]! ^ 1; // interlace
  return fixPngCrcs(out);
}

const pngBody = (r: Rng, b: Uint8Array) => fixPngCrcs(pick(r, GENERIC)(r, b));

/** Mutates the inflated scanlines (filter bytes and samples) and deflates them again into one IDAT. */
function pngPixels(r: Rng, b: Uint8Array): Uint8Array {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const before: Uint8Array[] = [], idat: Uint8Array[] = [], after: Uint8Array[] = [];
  for (let p = 8; p + 12 <= b.length;) {
    const len = view.getUint32(p), type = String.fromCharCode(...b.subarray(p + 4, p + 8));
    if (p + 12 + len > b.length) return b;
    if (type === 'IDAT') idat.push(b.subarray(p + 8, p + 8 + len));
    else (idat.length ? after : before).push(b.subarray(p, p + 12 + len));
    p += 12 + len;
  }
  let raw: Uint8Array;
  try {
    raw = zlib.inflateSync(concat(...idat));
  } catch {
    return b;
  }
  const data = zlib.deflateSync(pick(r, [bitFlips, byteSets, insertSegment, repeatSegment, deleteSegment, truncate])(r, raw));
  const chunk = new Uint8Array(12 + data.length);
  new DataView(chunk.buffer).setUint32(0, data.length);
  chunk.set([0x49, 0x44, 0x41, 0x54], 4);
  chunk.set(data, 8);
  return fixPngCrcs(concat(b.subarray(0, 8), ...before, chunk, ...after));
}

export const PNG_MUTATIONS = [pngHeader, pngBody, pngPixels, pngPixels];

// ---- JPEG: the frame header's size, component count and sampling factors; the restart interval.

function findMarker(b: Uint8Array, test: (m: number) => boolean): number {
  for (let p = 2; p + 4 < b.length; p++) if (b[p] === 0xff && test(b[p + 1]!)) return p;
  return -1;
}

function jpegFrame(r: Rng, b: Uint8Array): Uint8Array {
  const p = findMarker(b, (m) => m === 0xc0 || m === 0xc1 || m === 0xc2);
  if (p < 0 || p + 12 > b.length) return b;
  const out = b.slice(), view = new DataView(out.buffer);
  const field = randInt(r, 4);
  if (field < 2) view.setUint16(p + 5 + 2 * field, r() < 0.7 ? pick(r, HUGE_U16) : randInt(r, 1 << 16));
  else if (field === 2) out[p + 9] = pick(r, [0, 1, 2, 3, 4, 255]); // component count
  else out[p + 11] = pick(r, [0x11, 0x22, 0x44, 0x41, 0x14, 0x00, 0x55, 0xff, 0x12, 0x21, 0x31]); // sampling of comp 1
  return out;
}

function jpegRestart(r: Rng, b: Uint8Array): Uint8Array {
  const dri = Uint8Array.of(0xff, 0xdd, 0, 4, ...[pick(r, HUGE_U16)].flatMap((v) => [v >> 8, v & 255]));
  const sos = findMarker(b, (m) => m === 0xda);
  if (sos < 0) return b;
  return concat(b.subarray(0, sos), dri, b.subarray(sos));
}

export const JPEG_MUTATIONS = [jpegFrame, jpegRestart];

// ---- JSON (safetensors headers, config.json): a value anywhere in the tree replaced, deleted or nested deeply.

const ODD_VALUES: unknown[] = [0, -1, 1.5, 1e12, 2 ** 31, 2 ** 53, 1e300, -1e300, null, true, '', 'x', [], {}, [2 ** 40, 2 ** 40],
  'F32', 'BF16', [0], [-1, 4], 'two\nlines'];

type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };

/** All (container, key) pairs of a JSON tree, parents before children. */
function slots(v: JsonValue, out: Array<[Record<string, JsonValue> | JsonValue[], string | number]> = []) {
  if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), slots(x, out)));
  else if (v && typeof v === 'object') for (const k of Object.keys(v)) out.push([v, k]), slots(v[k]!, out);
  return out;
}

/** A stand-in for an array nested `depth` deep, spliced in as text by mutateJsonText (a tree that deep would
 * overflow the mutator's own recursion and JSON.stringify). */
const deep = (depth: number): JsonValue => `\u0000DEEP${depth}`;
const expandDeep = (text: string) => text.replace(/"\\u0000DEEP(\d+)"/g, (_, n: string) => '['.repeat(+n) + '1' + ']'.repeat(+n));

/** Replaces, deletes or deeply nests one value of `tree` (mutated in place). */
export function mutateJsonTree(r: Rng, tree: JsonValue): void {
  const all = slots(tree);
  if (!all.length) return;
  const [parent, key] = pick(r, all);
  const what = r();
  const set = (v: JsonValue) => ((parent as Record<string, JsonValue>)[key as string] = v);
  if (what < 0.15 && !Array.isArray(parent)) delete (parent as Record<string, JsonValue>)[key as string];
  else if (what < 0.2) set(deep(r() < 0.5 ? 100 : 20000));
  else if (what < 0.3 && typeof (parent as Record<string, JsonValue>)[key as string] === 'number') {
    set(-(parent as Record<string, number>)[key as string]!);
  } else set(structuredClone(pick(r, ODD_VALUES)) as JsonValue);
}

/** Parses `text` as JSON, applies 1 to 3 tree mutations and serializes it (generic bytes mutations otherwise). */
export function mutateJsonText(r: Rng, text: string): string | undefined {
  try {
    const tree = JSON.parse(text) as JsonValue;
    for (let n = 1 + randInt(r, 3); n > 0; n--) mutateJsonTree(r, tree);
    return expandDeep(JSON.stringify(tree));
  } catch {
    return undefined; // not JSON, or nested too deep (by an earlier mutation) for the tree walk
  }
}

const jsonTree = (r: Rng, b: Uint8Array) => Buffer.from(mutateJsonText(r, Buffer.from(b).toString('utf8')) ?? Buffer.from(b));

export const JSON_MUTATIONS = [jsonTree];

// ---- safetensors: the same tree mutations on the header, the u64 length prefix kept right or set to a huge value.

function safetensorsHeader(r: Rng, b: Uint8Array): Uint8Array {
  if (b.length < 8) return b;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n + 8 > b.length) return b;
  const text = mutateJsonText(r, Buffer.from(b.subarray(8, 8 + n)).toString('utf8'));
  if (text === undefined) return b;
  const header = Buffer.from(text);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
  return concat(len, header, b.subarray(8 + n));
}

function safetensorsLength(r: Rng, b: Uint8Array): Uint8Array {
  const out = b.slice(0, Math.max(8, b.length));
  const v = pick(r, [0n, 1n, 2n ** 32n, 2n ** 63n, 2n ** 64n - 1n, 100000000n, BigInt(b.length), BigInt(b.length - 7)]);
  new DataView(out.buffer).setBigUint64(0, v < 0n ? 0n : v, true);
  return out;
}

export const SAFETENSORS_MUTATIONS = [safetensorsHeader, safetensorsHeader, safetensorsLength];
