// safetensors reader (validated header, lazy per-tensor reads) and atomic writer.
// Format: u64 LE header length N, N bytes of JSON, then the raw little-endian row-major data.
import * as fs from 'fs';
import * as path from 'path';
import { errorCode, files, RandomAccess } from './byte_source';
import { brief, oneLine } from './config';

export type StDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<StDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: StDtype;
  shape: number[];
  /** byte offsets relative to the start of the data section */
  data_offsets: [number, number];
}

/** A tensor read from disk: floats become Float32Array, integers Int32Array, bool/u8 Uint8Array. */
export interface HostTensor {
  dtype: 'float32' | 'int32' | 'bool';
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
}

export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
  constructor(message: string) {
    super(oneLine(message));
  }
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** `__metadata__`: absent, or an object of strings (the format's HashMap<String, String>). */
function parseMetadata(raw: unknown, fail: (msg: string) => never): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.values(raw).every((v) => typeof v === 'string')) {
    return fail(`__metadata__: expected an object of strings, got ${brief(raw)}`);
  }
  return raw as Record<string, string>;
}

/**
 * One header entry checked against the file before anything is allocated for it: a known dtype, a shape of
 * non-negative safe integers, and data_offsets inside the data section spanning exactly the shape's bytes.
 */
function checkTensorInfo(name: string, raw: unknown, dataBytes: number, fail: (msg: string) => never): TensorInfo {
  const at = `tensor '${brief(name, 80).replace(/^"|"$/g, '')}'`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail(`${at}: expected an object, got ${brief(raw)}`);
  const info = raw as Partial<Record<keyof TensorInfo, unknown>>;
  if (typeof info.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, info.dtype)) fail(`${at}: unsupported dtype ${brief(info.dtype)}`);
  const shape = info.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`${at}: bad shape ${brief(shape)}`);
  const offsets = info.data_offsets;
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o)) || offsets[0] < 0 || offsets[1] < offsets[0]) {
    fail(`${at}: bad data_offsets ${brief(offsets)}`);
  }
  const [s, e] = offsets as [number, number];
  if (e > dataBytes) fail(`${at}: data_offsets [${s}, ${e}] run past the ${dataBytes}-byte data section (truncated file?)`);
  const dtype = info.dtype as StDtype, want = size(shape as number[]) * DTYPE_BYTES[dtype];
  if (e - s !== want) fail(`${at}: ${e - s} bytes for ${dtype}${brief(shape)}, expected ${want}`);
  return { dtype, shape: shape as number[], data_offsets: [s, e] };
}

/** An open safetensors file; tensors are read one at a time with positioned reads. */
export class SafetensorsFile {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata!: Record<string, string>;
  private readonly dataStart!: number;
  private src: RandomAccess | undefined;

  constructor(readonly file: string) {
    const fail = (msg: string): never => {
      throw new SafetensorsError(`${file}: ${msg}`);
    };
    try {
      this.src = files().open(file);
    } catch (e) {
      fail(errorCode(e) === 'EISDIR' ? 'not a file' : `cannot open (${errorCode(e)})`);
    }
    try {
      const fileSize = this.src!.size;
      if (fileSize < 8) fail(`truncated: ${fileSize} bytes, smaller than the 8-byte header length`);
      const lenBuf = new Uint8Array(8);
      this.src!.read(lenBuf, 0);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      if (Number(n) + 8 > fileSize) fail(`header length ${n} runs past the end of the ${fileSize}-byte file`);
      const hb = new Uint8Array(Number(n));
      this.src!.read(hb, 8);
      let header: unknown;
      try {
        header = JSON.parse(new TextDecoder().decode(hb));
      } catch (e) {
        return fail(`header is not valid JSON (${(e as Error).message.replace(/\s+/g, ' ')})`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('header is not a JSON object');
      this.dataStart = 8 + Number(n);
      this.metadata = parseMetadata((header as Record<string, unknown>).__metadata__, fail);
      const spans: Array<[number, number, string]> = [];
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') continue;
        const info = checkTensorInfo(name, raw, fileSize - this.dataStart, fail);
        spans.push([info.data_offsets[0], info.data_offsets[1], name]);
        this.tensors.set(name, info);
      }
      spans.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < spans.length; i++) {
        const prev = spans[i - 1]!, cur = spans[i]!;
        if (cur[0] < prev[1]) fail(`tensors '${prev[2]}' and '${cur[2]}' overlap`);
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`${this.file}: no tensor named '${name}'`);
    return info;
  }

  /** Raw bytes of one tensor, in a fresh (aligned) buffer or in `scratch`'s. */
  /** The raw bytes of one tensor, or of `length` bytes of them from `offset` (a chunk of a large tensor). */
  readBytes(name: string, scratch?: ReadScratch, offset = 0, length?: number): Uint8Array {
    if (this.src === undefined) throw new SafetensorsError(`${this.file}: file is closed`);
    const [s, e] = this.info(name).data_offsets;
    const n = length ?? e - s - offset;
    if (offset < 0 || n < 0 || offset + n > e - s) throw new RangeError(`${this.file}: '${name}': bytes [${offset}, ${offset + n}) outside its ${e - s}`);
    const buf = scratch ? scratch.bytes(n) : new Uint8Array(n);
    if (this.src.read(buf, this.dataStart + s + offset) < buf.length) throw new SafetensorsError(`${this.file}: short read of '${name}'`);
    return buf;
  }

  /**
   * One tensor converted to a tfjs-friendly host array (bf16/f16/f64 -> f32, i64/i16/i8 -> i32). With `scratch`
   * the bytes and the bf16 -> f32 values live in its buffers: valid until its next use.
   */
  read(name: string, scratch?: ReadScratch): HostTensor {
    const info = this.info(name);
    return { ...decode(this.readBytes(name, scratch), info.dtype, `${this.file}:${name}`, scratch), shape: [...info.shape] };
  }

  close(): void {
    this.src?.close();
    this.src = undefined;
  }
}

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return t;
})();

/** Host buffers reused from one tensor read to the next (grown to the largest), so that reading leaves no garbage. */
export class ReadScratch {
  private raw = new ArrayBuffer(0);
  private f32 = new ArrayBuffer(0);

  bytes(n: number): Uint8Array {
    if (this.raw.byteLength < n) this.raw = new ArrayBuffer(n);
    return new Uint8Array(this.raw, 0, n);
  }

  floats(n: number): Float32Array {
    if (this.f32.byteLength < 4 * n) this.f32 = new ArrayBuffer(4 * n);
    return new Float32Array(this.f32, 0, n);
  }
}

export function bf16ToF32(u16: Uint16Array, out: Float32Array = new Float32Array(u16.length)): Float32Array {
  const n = u16.length;
  const o = new Int32Array(out.buffer, out.byteOffset, n); // int32 stores: `<< 16` is an int32, no conversion
  if (u16.byteOffset % 4 !== 0) {
    for (let i = 0; i < n; i++) o[i] = u16[i]! << 16;
    return out;
  }
  // two bf16 values per 32-bit load (little-endian: the first in the low half), ~1.4x faster than one by one
  const pairs = new Int32Array(u16.buffer, u16.byteOffset, n >> 1);
  for (let i = 0, j = 0; i < pairs.length; i++, j += 2) {
    const v = pairs[i]!;
    o[j] = v << 16;
    o[j + 1] = v & -65536;
  }
  if (n & 1) o[n - 1] = u16[n - 1]! << 16;
  return out;
}

/** float32 -> bfloat16 with round-to-nearest-even (as torch's .to(torch.bfloat16)). */
export function f32ToBf16(f32: Float32Array): Uint16Array {
  const u32 = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(f32.length);
  for (let i = 0; i < f32.length; i++) {
    const x = u32[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) out[i] = (x >>> 16) | 0x40;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

function decode(buf: Uint8Array, dtype: StDtype, where: string, scratch?: ReadScratch): Omit<HostTensor, 'shape'> {
  const view = <T>(C: { new (b: ArrayBuffer, o: number, n: number): T }, bytes: number) =>
    new C(buf.buffer as ArrayBuffer, buf.byteOffset, buf.byteLength / bytes);
  switch (dtype) {
    case 'F32': return { dtype: 'float32', data: view(Float32Array, 4) };
    case 'BF16': return { dtype: 'float32', data: bf16ToF32(view(Uint16Array, 2), scratch?.floats(buf.byteLength / 2)) };
    case 'F16': return { dtype: 'float32', data: Float32Array.from(view(Uint16Array, 2), (h) => F16_TABLE[h]!) };
    case 'F64': return { dtype: 'float32', data: Float32Array.from(view(Float64Array, 8)) };
    case 'I64': {
      const b = view(BigInt64Array, 8);
      const o = new Int32Array(b.length);
      for (let i = 0; i < b.length; i++) {
        const v = b[i]!;
        if (v > 2147483647n || v < -2147483648n) throw new SafetensorsError(`${where}: I64 value ${v} does not fit in int32`);
        o[i] = Number(v);
      }
      return { dtype: 'int32', data: o };
    }
    case 'I32': return { dtype: 'int32', data: view(Int32Array, 4) };
    case 'I16': return { dtype: 'int32', data: Int32Array.from(view(Int16Array, 2)) };
    case 'I8': return { dtype: 'int32', data: Int32Array.from(view(Int8Array, 1)) };
    case 'U8': return { dtype: 'int32', data: Int32Array.from(view(Uint8Array, 1)) };
    case 'BOOL': return { dtype: 'bool', data: view(Uint8Array, 1) };
  }
}

/** A tensor to write: data in the dtype named (F32 from Float32Array, BF16 converted from Float32Array). */
export interface WriteTensor {
  dtype: 'F32' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array | BigInt64Array;
}

function encode(t: WriteTensor, name: string): Buffer {
  const n = size(t.shape);
  if (t.data.length !== n) throw new SafetensorsError(`tensor '${name}': ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
  let arr: ArrayBufferView;
  switch (t.dtype) {
    case 'BF16': arr = f32ToBf16(t.data as Float32Array); break;
    case 'I64': arr = t.data instanceof BigInt64Array ? t.data : BigInt64Array.from(t.data as Int32Array, (v) => BigInt(v)); break;
    default: arr = t.data;
  }
  return Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
}

type Announced = { dtype: WriteTensor['dtype']; shape: number[] };

/** The header JSON (padded to 8 bytes) and each tensor's entry, for tensors written in the order given. */
function layoutHeader(metas: Array<[string, Announced]>, metadata: Record<string, string>): { json: string; infos: Map<string, Announced> } {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const [name, meta] of metas) {
    const bytes = size(meta.shape) * DTYPE_BYTES[meta.dtype];
    header[name] = { dtype: meta.dtype, shape: meta.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8) json += ' ';
  return { json, infos: new Map(metas) };
}

/** A temporary file beside `file` holding the header; `write` appends tensors, `commit` fsyncs and renames it into place. */
class AtomicFile {
  private readonly tmp: string;
  private readonly fd: number;

  constructor(private readonly file: string, private readonly header: { json: string; infos: Map<string, Announced> }) {
    this.tmp = `${file}.${process.pid}.tmp`;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.fd = fs.openSync(this.tmp, 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(Buffer.byteLength(header.json)));
      fs.writeSync(this.fd, len);
      fs.writeSync(this.fd, header.json);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  write(name: string, w: WriteTensor): void {
    const expected = this.header.infos.get(name)!;
    if (JSON.stringify(w.shape) !== JSON.stringify(expected.shape) || w.dtype !== expected.dtype) {
      throw new SafetensorsError(`tensor '${name}': produced ${w.dtype}${JSON.stringify(w.shape)}, announced ${expected.dtype}${JSON.stringify(expected.shape)}`);
    }
    fs.writeSync(this.fd, encode(w, name));
  }

  commit(): void {
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      this.abort();
      throw e;
    }
    fs.closeSync(this.fd);
    fs.renameSync(this.tmp, this.file);
  }

  abort(): void {
    fs.closeSync(this.fd);
    fs.rmSync(this.tmp, { force: true });
  }
}

/**
 * Writes a safetensors file atomically (temporary file, fsync, rename). `tensors` may be a lazy iterable
 * of [name, producer] pairs so that only one tensor's bytes are in memory at a time.
 */
export function writeSafetensors(
  file: string,
  tensors: Iterable<[string, WriteTensor | (() => WriteTensor)]>,
  metadata: Record<string, string> = {},
  shapes?: Map<string, Announced>,
): void {
  const entries = [...tensors];
  // The header needs every shape up front: take it from `shapes` when producers are lazy.
  const resolved = entries.map(([name, t]) => (typeof t === 'function' ? (shapes?.has(name) ? undefined : t()) : t));
  const out = new AtomicFile(file, layoutHeader(entries.map(([name], i) => [name, resolved[i] ?? shapes!.get(name)!]), metadata));
  try {
    entries.forEach(([name, t], i) => out.write(name, resolved[i] ?? (t as () => WriteTensor)()));
  } catch (e) {
    out.abort();
    throw e;
  }
  out.commit();
}

/**
 * writeSafetensors for producers that read asynchronously (GPU tensors, `await t.data()`): every shape is announced
 * in `shapes`, and each producer runs only when its bytes are written, so one tensor is in memory at a time.
 */
export async function writeSafetensorsAsync(
  file: string,
  tensors: Array<[string, () => Promise<WriteTensor>]>,
  metadata: Record<string, string>,
  shapes: Map<string, Announced>,
): Promise<void> {
  const metas = tensors.map(([name]): [string, Announced] => {
    const meta = shapes.get(name);
    if (!meta) throw new SafetensorsError(`tensor '${name}': no shape announced`);
    return [name, meta];
  });
  const out = new AtomicFile(file, layoutHeader(metas, metadata));
  try {
    for (const [name, produce] of tensors) out.write(name, await produce());
  } catch (e) {
    out.abort();
    throw e;
  }
  out.commit();
}

/** Reads every tensor of a (small) file into host arrays: for reference files and tests. */
export function readAllSafetensors(file: string): { tensors: Map<string, HostTensor>; metadata: Record<string, string> } {
  const f = new SafetensorsFile(file);
  try {
    const tensors = new Map<string, HostTensor>();
    for (const k of f.keys()) tensors.set(k, f.read(k));
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}
