import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { SafetensorsFile, bf16ToF32, f32ToBf16, readAllSafetensors, writeSafetensors } from '../../lib/safetensors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-st-'));

/** Builds a safetensors file by hand from a header object and raw data bytes. */
function rawFile(name: string, header: unknown, data: Buffer, lengthOverride?: bigint): string {
  const hs = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(hs.length));
  const f = path.join(tmp, name);
  fs.writeFileSync(f, Buffer.concat([len, hs, data]));
  return f;
}

describe('safetensors', () => {
  it('round-trips F32, BF16, I64, I32 and BOOL tensors', () => {
    const f = path.join(tmp, 'rt.safetensors');
    const x = new Float32Array([1, -2.5, 3.25, 1e-3]);
    writeSafetensors(f, [
      ['a', { dtype: 'F32', shape: [2, 2], data: x }],
      ['b', { dtype: 'BF16', shape: [4], data: x }],
      ['c', { dtype: 'I64', shape: [3], data: new Int32Array([-1, 0, 151343]) }],
      ['d', { dtype: 'I32', shape: [1], data: new Int32Array([7]) }],
      ['e', { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) }],
    ], { note: 'x' });
    const { tensors, metadata } = readAllSafetensors(f);
    expect(metadata.note).to.equal('x');
    expect(Array.from(tensors.get('a')!.data)).to.deep.equal(Array.from(x));
    expect(tensors.get('a')!.shape).to.deep.equal([2, 2]);
    // bf16 keeps 8 mantissa bits: 1e-3 rounds to 0.00099945068359375
    expect(Array.from(tensors.get('b')!.data)).to.deep.equal([1, -2.5, 3.25, 0.00099945068359375]);
    expect(tensors.get('c')!.dtype).to.equal('int32');
    expect(Array.from(tensors.get('c')!.data)).to.deep.equal([-1, 0, 151343]);
    expect(Array.from(tensors.get('d')!.data)).to.deep.equal([7]);
    expect(Array.from(tensors.get('e')!.data)).to.deep.equal([1, 0]);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('rounds float32 to bf16 to nearest even', () => {
    // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties to even (1); 1 + 3*2^-8 ties up to 1 + 2^-6
    const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0, Infinity]);
    expect(Array.from(bf16ToF32(f32ToBf16(x)))).to.deep.equal([1, 1 + 2 ** -6, -0, Infinity]);
  });

  it('decodes F16', () => {
    const u16 = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001]);
    const f = rawFile('f16.safetensors', { h: { dtype: 'F16', shape: [4], data_offsets: [0, 8] } }, Buffer.from(u16.buffer));
    const t = readAllSafetensors(f).tensors.get('h')!;
    expect(Array.from(t.data)).to.deep.equal([1, -2, 65504, 2 ** -24]);
  });

  it('rejects a truncated file, naming it', () => {
    const f = rawFile('trunc.safetensors', { w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8));
    expect(() => new SafetensorsFile(f)).to.throw(/trunc\.safetensors.*'w'.*data_offsets \[0, 16\] run past the 8-byte data section/);
    const tiny = path.join(tmp, 'tiny.safetensors');
    fs.writeFileSync(tiny, Buffer.alloc(5));
    expect(() => new SafetensorsFile(tiny)).to.throw(/truncated: 5 bytes/);
  });

  it('rejects an oversized header', () => {
    const f = rawFile('big.safetensors', {}, Buffer.alloc(0), 1n << 40n);
    expect(() => new SafetensorsFile(f)).to.throw(/header length 1099511627776 exceeds/);
    const g = rawFile('past.safetensors', {}, Buffer.alloc(0), 1000n);
    expect(() => new SafetensorsFile(g)).to.throw(/header length 1000 runs past the end/);
  });

  it('rejects out-of-range, mis-sized and overlapping offsets, and bad dtypes or JSON', () => {
    const d = Buffer.alloc(16);
    expect(() => new SafetensorsFile(rawFile('neg.safetensors', { w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, d))).to.throw(/'w': bad data_offsets/);
    expect(() => new SafetensorsFile(rawFile('size.safetensors', { w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, d))).to.throw(/'w': 8 bytes for F32\[3\], expected 12/);
    expect(() => new SafetensorsFile(rawFile('ov.safetensors', {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, d))).to.throw(/'a' and 'b' overlap/);
    expect(() => new SafetensorsFile(rawFile('dt.safetensors', { w: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, d))).to.throw(/'w': unsupported dtype "Q4"/);
    const bad = path.join(tmp, 'json.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(3n);
    fs.writeFileSync(bad, Buffer.concat([len, Buffer.from('{x}')]));
    expect(() => new SafetensorsFile(bad)).to.throw(/header is not valid JSON/);
  });

  it('leaves the previous file intact when a write fails', () => {
    const f = path.join(tmp, 'keep.safetensors');
    writeSafetensors(f, [['a', { dtype: 'F32', shape: [1], data: new Float32Array([5]) }]]);
    expect(() => writeSafetensors(f, [
      ['a', { dtype: 'F32', shape: [1], data: new Float32Array([6]) }],
      ['b', () => { throw new Error('producer failed'); }],
    ], {}, new Map([['b', { dtype: 'F32' as const, shape: [1] }]]))).to.throw(/producer failed/);
    expect(Array.from(readAllSafetensors(f).tensors.get('a')!.data)).to.deep.equal([5]);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
  });
});
