// JPEG parsing and Huffman decoding to DCT coefficients, after libjpeg-turbo's jdmarker.c, jdhuff.c and jdphuff.c.
// Baseline, extended (8-bit) and progressive Huffman JPEGs; jpeg_pixels.ts turns the coefficients into pixels.
import { checkImageSize, ProcessorError } from './errors';

/** Zigzag index -> natural (row-major) index, with libjpeg's 16 extra entries so corrupt runs land on 63. */
const NATURAL_ORDER = new Int32Array([
  0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
  28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
  47, 55, 62, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
]);

export interface JpegComponent {
  id: number;
  h: number;
  v: number;
  quantTable: number;
  /** libjpeg's downsampled_width / downsampled_height: ceil(image size * factor / max factor) */
  width: number;
  height: number;
  /** blocks allocated per line / column (padded to whole MCUs); coefficients are [row][col][64] natural order */
  blocksPerLine: number;
  blocksPerColumn: number;
  coeffs: Int16Array;
}

export interface JpegFrame {
  width: number;
  height: number;
  maxH: number;
  maxV: number;
  components: JpegComponent[];
  /** natural-order quantization tables by slot */
  quantTables: (Uint16Array | undefined)[];
  sawJfif: boolean;
  adobeTransform: number | undefined;
  /** TIFF bytes of the first APP1 Exif segment */
  exif: Uint8Array | undefined;
}

interface HuffmanTable {
  /** lookahead on 8 bits: (length << 8) | value, 0 when the code is longer than 8 bits */
  fast: Int32Array;
  maxcode: Int32Array; // [17], -1 when no code of that length; maxcode[17] sentinel
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
}

function buildHuffman(counts: Uint8Array, values: Uint8Array, fail: (m: string) => never): HuffmanTable {
  const maxcode = new Int32Array(18).fill(-1), valptr = new Int32Array(17), mincode = new Int32Array(17);
  const fast = new Int32Array(256);
  let code = 0, p = 0;
  for (let len = 1; len <= 16; len++) {
    const n = counts[len - 1]!;
    if (n > 0) {
      valptr[len] = p;
      mincode[len] = code;
      for (let i = 0; i < n; i++, code++, p++) {
        if (len <= 8) {
          const shift = 8 - len;
          for (let j = 0; j < 1 << shift; j++) fast[(code << shift) | j] = (len << 8) | values[p]!;
        }
      }
      maxcode[len] = code - 1;
    }
    if (code > 1 << len) fail('bad Huffman table');
    code <<= 1;
  }
  maxcode[17] = 0x7fffffff;
  return { fast, maxcode, valptr, mincode, values };
}

/** Entropy-coded segment reader: unstuffs 0xFF00, stops at markers and then feeds zeros (as libjpeg does). */
class BitReader {
  private buf = 0;
  private bits = 0;
  hitMarker = false;
  constructor(private readonly data: Uint8Array, public pos: number, private readonly fail: (m: string) => never) {}

  private fill(): void {
    while (this.bits <= 23) {
      let byte = 0;
      if (!this.hitMarker) {
        if (this.pos >= this.data.length) this.fail('truncated entropy-coded data (no EOI)');
        byte = this.data[this.pos]!;
        if (byte === 0xff) {
          const next = this.data[this.pos + 1];
          if (next === 0x00) this.pos += 2;
          else {
            this.hitMarker = true;
            byte = 0;
          }
        } else this.pos++;
      }
      this.buf = ((this.buf << 8) | byte) >>> 0;
      this.bits += 8;
    }
  }

  getBits(n: number): number {
    if (n === 0) return 0;
    if (this.bits < n) this.fill();
    this.bits -= n;
    return (this.buf >>> this.bits) & ((1 << n) - 1);
  }

  decode(t: HuffmanTable): number {
    if (this.bits < 16) this.fill();
    const hit = t.fast[(this.buf >>> (this.bits - 8)) & 0xff]!;
    if (hit !== 0) {
      this.bits -= hit >> 8;
      return hit & 0xff;
    }
    for (let len = 9; len <= 16; len++) {
      const code = (this.buf >>> (this.bits - len)) & ((1 << len) - 1);
      if (code <= t.maxcode[len]!) {
        this.bits -= len;
        return t.values[t.valptr[len]! + code - t.mincode[len]!]!;
      }
    }
    return this.fail('bad Huffman code');
  }

  /** HUFF_EXTEND: the s-bit magnitude category to a signed value */
  receiveExtend(s: number): number {
    if (s === 0) return 0;
    const v = this.getBits(s);
    return v < 1 << (s - 1) ? v - (1 << s) + 1 : v;
  }

  /**
   * At a restart boundary or the end of a scan: drop the buffered bits, skip the padding up to the next marker
   * (libjpeg's next_marker) and consume it if it is an RSTn.
   */
  restart(): void {
    this.buf = 0;
    this.bits = 0;
    this.hitMarker = false;
    const d = this.data;
    while (this.pos < d.length) {
      if (d[this.pos] !== 0xff) this.pos++;
      else if (d[this.pos + 1] === 0x00) this.pos += 2;
      else if (d[this.pos + 1] === 0xff) this.pos++;
      else break;
    }
    if (d[this.pos] === 0xff && d[this.pos + 1]! >= 0xd0 && d[this.pos + 1]! <= 0xd7) this.pos += 2;
  }
}

interface Scan {
  comps: JpegComponent[];
  dc: (HuffmanTable | undefined)[];
  ac: (HuffmanTable | undefined)[];
  ss: number;
  se: number;
  ah: number;
  al: number;
}

/** Decodes one scan into the components' coefficient arrays; returns the position after its entropy data. */
function decodeScan(frame: JpegFrame, scan: Scan, progressive: boolean, data: Uint8Array, pos: number,
  restartInterval: number, fail: (m: string) => never): number {
  const r = new BitReader(data, pos, fail);
  const preds = new Int32Array(scan.comps.length);
  let eobrun = 0;
  const { ss, se, ah, al } = scan;

  const decodeBlock = (ci: number, c: JpegComponent, off: number) => {
    const co = c.coeffs;
    if (!progressive) {
      const t = r.decode(scan.dc[ci]!);
      preds[ci] += t === 0 ? 0 : r.receiveExtend(t);
      co[off] = preds[ci]!;
      const ac = scan.ac[ci]!;
      for (let k = 1; k < 64; k++) {
        const rs = r.decode(ac), s = rs & 15, run = rs >> 4;
        if (s === 0) {
          if (run < 15) break;
          k += 15;
          continue;
        }
        k += run;
        co[off + NATURAL_ORDER[k]!] = r.receiveExtend(s);
      }
    } else if (ss === 0) {
      if (ah === 0) {
        const t = r.decode(scan.dc[ci]!);
        preds[ci] += t === 0 ? 0 : r.receiveExtend(t);
        co[off] = preds[ci]! * (1 << al);
      } else if (r.getBits(1)) co[off] |= 1 << al;
    } else if (ah === 0) {
      if (eobrun > 0) {
        eobrun--;
        return;
      }
      const ac = scan.ac[ci]!;
      for (let k = ss; k <= se; k++) {
        const rs = r.decode(ac), s = rs & 15, run = rs >> 4;
        if (s !== 0) {
          k += run;
          co[off + NATURAL_ORDER[k]!] = r.receiveExtend(s) * (1 << al);
        } else if (run === 15) k += 15;
        else {
          eobrun = (1 << run) - 1;
          if (run) eobrun += r.getBits(run);
          break;
        }
      }
    } else refineAc(co, off, scan.ac[ci]!);
  };

  // decode_mcu_AC_refine of jdphuff.c: correction bits for known coefficients, newly nonzero ones of +-1<<al.
  const refineAc = (co: Int16Array, off: number, ac: HuffmanTable) => {
    const p1 = 1 << al, m1 = -1 << al;
    let k = ss;
    const correct = (pos: number) => {
      const v = co[pos]!;
      if (r.getBits(1) && (v & p1) === 0) co[pos] = v >= 0 ? v + p1 : v + m1;
    };
    if (eobrun === 0) {
      for (; k <= se; k++) {
        const rs = r.decode(ac);
        let run = rs >> 4, s = rs & 15;
        if (s !== 0) s = r.getBits(1) ? p1 : m1;
        else if (run !== 15) {
          eobrun = 1 << run;
          if (run) eobrun += r.getBits(run);
          break;
        }
        do {
          const pos = off + NATURAL_ORDER[k]!;
          if (co[pos] !== 0) correct(pos);
          else if (--run < 0) break;
          k++;
        } while (k <= se);
        if (s !== 0) co[off + NATURAL_ORDER[k]!] = s;
      }
    }
    if (eobrun > 0) {
      for (; k <= se; k++) {
        const pos = off + NATURAL_ORDER[k]!;
        if (co[pos] !== 0) correct(pos);
      }
      eobrun--;
    }
  };

  // One component in the scan: its own block grid, one block per MCU. Several: MCUs of h x v blocks each.
  const single = scan.comps.length === 1;
  const c0 = scan.comps[0]!;
  const mcusPerLine = single ? Math.ceil(c0.width / 8) : Math.ceil(frame.width / (8 * frame.maxH));
  const mcusPerColumn = single ? Math.ceil(c0.height / 8) : Math.ceil(frame.height / (8 * frame.maxV));
  const total = mcusPerLine * mcusPerColumn;
  for (let mcu = 0; mcu < total; mcu++) {
    if (restartInterval > 0 && mcu > 0 && mcu % restartInterval === 0) {
      r.restart();
      preds.fill(0);
      eobrun = 0;
    }
    const row = Math.floor(mcu / mcusPerLine), col = mcu % mcusPerLine;
    if (single) decodeBlock(0, c0, (row * c0.blocksPerLine + col) * 64);
    else {
      for (let ci = 0; ci < scan.comps.length; ci++) {
        const c = scan.comps[ci]!;
        for (let v = 0; v < c.v; v++) {
          for (let h = 0; h < c.h; h++) decodeBlock(ci, c, ((row * c.v + v) * c.blocksPerLine + col * c.h + h) * 64);
        }
      }
    }
  }
  r.restart();
  return r.pos;
}

/** Parses a JPEG file and decodes every scan; errors name the file. */
export function decodeJpegCoefficients(data: Uint8Array, name: string): JpegFrame {
  const fail = (m: string): never => {
    throw new ProcessorError(`${name}: corrupt or unsupported JPEG: ${m}`);
  };
  const u16 = (p: number) => {
    if (p + 1 >= data.length) fail('truncated marker segment');
    return (data[p]! << 8) | data[p + 1]!;
  };
  if (data[0] !== 0xff || data[1] !== 0xd8) fail('no SOI marker');
  const quantTables: (Uint16Array | undefined)[] = [];
  const dcTables: (HuffmanTable | undefined)[] = [], acTables: (HuffmanTable | undefined)[] = [];
  let frame: JpegFrame | undefined, progressive = false, restartInterval = 0, sawJfif = false;
  let adobeTransform: number | undefined, exif: Uint8Array | undefined, scans = 0;
  let pos = 2;
  for (;;) {
    // Skip fill bytes and garbage up to the next marker (libjpeg's next_marker).
    while (pos < data.length && data[pos] !== 0xff) pos++;
    while (pos < data.length && data[pos] === 0xff) pos++;
    if (pos >= data.length) fail(scans === 0 ? 'no image data' : 'missing EOI marker');
    const marker = data[pos++]!;
    if (marker === 0xd9) break; // EOI
    if ((marker >= 0xd0 && marker <= 0xd7) || marker <= 0x01) continue; // stray RSTn, TEM or stuffed 0x00: no segment
    const len = u16(pos), seg = pos + 2, end = pos + len;
    if (len < 2 || end > data.length) fail(`marker 0x${marker.toString(16)} segment runs past the end of the file`);
    pos = end;
    if (marker === 0xe0 && len >= 7 && String.fromCharCode(...data.subarray(seg, seg + 5)) === 'JFIF\0') sawJfif = true;
    else if (marker === 0xe1 && exif === undefined && len >= 8 && String.fromCharCode(...data.subarray(seg, seg + 6)) === 'Exif\0\0') {
      exif = data.subarray(seg + 6, end);
    } else if (marker === 0xee && len >= 14 && String.fromCharCode(...data.subarray(seg, seg + 5)) === 'Adobe') {
      adobeTransform = data[seg + 11];
    } else if (marker === 0xdb) {
      for (let p = seg; p < end;) {
        const pq = data[p]! >> 4, tq = data[p]! & 15;
        p++;
        if (tq > 3) fail(`quantization table slot ${tq}`);
        const t = new Uint16Array(64);
        for (let k = 0; k < 64; k++, p += pq ? 2 : 1) t[NATURAL_ORDER[k]!] = pq ? u16(p) : data[p]!;
        quantTables[tq] = t;
      }
    } else if (marker === 0xc4) {
      for (let p = seg; p < end;) {
        const tc = data[p]! >> 4, th = data[p]! & 15;
        const counts = data.subarray(p + 1, p + 17);
        const n = counts.reduce((a, b) => a + b, 0);
        if (th > 3 || tc > 1 || p + 17 + n > end) fail('bad DHT segment');
        const table = buildHuffman(counts, data.subarray(p + 17, p + 17 + n), fail);
        (tc === 0 ? dcTables : acTables)[th] = table;
        p += 17 + n;
      }
    } else if (marker === 0xdd) restartInterval = u16(seg);
    else if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (frame) fail('more than one frame');
      progressive = marker === 0xc2;
      frame = parseFrame(data, seg, name, fail, quantTables);
    } else if (marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      fail(`SOF${marker - 0xc0} (lossless, hierarchical or arithmetic coding) is not supported`);
    } else if (marker === 0xda) {
      if (!frame) return fail('scan before frame header');
      const ns = data[seg]!, comps: JpegComponent[] = [], dc: (HuffmanTable | undefined)[] = [], ac: (HuffmanTable | undefined)[] = [];
      for (let i = 0; i < ns; i++) {
        const id = data[seg + 1 + 2 * i]!, td = data[seg + 2 + 2 * i]!;
        const c = frame.components.find((x) => x.id === id) ?? fail(`scan names unknown component ${id}`);
        comps.push(c);
        dc.push(dcTables[td >> 4]);
        ac.push(acTables[td & 15]);
      }
      const q = seg + 1 + 2 * ns;
      const scan: Scan = { comps, dc, ac, ss: data[q]!, se: data[q + 1]!, ah: data[q + 2]! >> 4, al: data[q + 2]! & 15 };
      const needDc = !progressive || (scan.ss === 0 && scan.ah === 0), needAc = !progressive || scan.ss > 0;
      if ((needDc && dc.some((t) => !t)) || (needAc && ac.some((t) => !t))) fail('scan uses an undefined Huffman table');
      if (progressive && scan.ss > 0 && ns !== 1) fail('progressive AC scan with several components');
      if (scan.se > 63 || scan.ss > scan.se) fail(`bad spectral selection ${scan.ss}..${scan.se}`);
      pos = decodeScan(frame, scan, progressive, data, end, restartInterval, fail);
      scans++;
    }
  }
  if (!frame || scans === 0) return fail('no image data');
  frame.sawJfif = sawJfif;
  frame.adobeTransform = adobeTransform;
  frame.exif = exif;
  for (const c of frame.components) if (!quantTables[c.quantTable]) fail(`missing quantization table ${c.quantTable}`);
  return frame;
}

function parseFrame(data: Uint8Array, seg: number, name: string, fail: (m: string) => never,
  quantTables: (Uint16Array | undefined)[]): JpegFrame {
  const precision = data[seg]!;
  const height = (data[seg + 1]! << 8) | data[seg + 2]!, width = (data[seg + 3]! << 8) | data[seg + 4]!;
  const n = data[seg + 5]!;
  if (precision !== 8) fail(`${precision}-bit samples are not supported`);
  if (width === 0 || height === 0) fail(`bad image size ${width}x${height}`);
  checkImageSize(name, 'JPEG', width, height);
  // Every 8x8 block of the full-resolution component costs at least one bit in its first (DC) scan, so a file
  // declaring more blocks than 8 per byte is truncated or corrupt: refused before the coefficients are allocated.
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
  if (blocks > 8 * data.length) {
    fail(`${width}x${height} needs at least ${Math.ceil(blocks / 8)} bytes of coded data (1 bit per 8x8 block), the file has ${data.length}`);
  }
  if (n !== 1 && n !== 3) fail(`${n} components (only grayscale and 3-component colour are supported)`);
  const raw = [];
  for (let i = 0; i < n; i++) {
    const p = seg + 6 + 3 * i;
    const h = data[p + 1]! >> 4, v = data[p + 1]! & 15;
    if (h < 1 || h > 4 || v < 1 || v > 4) fail(`bad sampling factors ${h}x${v}`);
    raw.push({ id: data[p]!, h, v, quantTable: data[p + 2]! });
  }
  const maxH = Math.max(...raw.map((c) => c.h)), maxV = Math.max(...raw.map((c) => c.v));
  const mcusPerLine = Math.ceil(width / (8 * maxH)), mcusPerColumn = Math.ceil(height / (8 * maxV));
  const components = raw.map((c) => {
    const cw = Math.ceil((width * c.h) / maxH), ch = Math.ceil((height * c.v) / maxV);
    // A lone component is coded block by block; interleaved ones fill whole MCUs (padding blocks included).
    const blocksPerLine = n === 1 ? Math.ceil(cw / 8) : mcusPerLine * c.h;
    const blocksPerColumn = n === 1 ? Math.ceil(ch / 8) : mcusPerColumn * c.v;
    return { ...c, width: cw, height: ch, blocksPerLine, blocksPerColumn, coeffs: new Int16Array(blocksPerLine * blocksPerColumn * 64) };
  });
  return { width, height, maxH, maxV, components, quantTables, sawJfif: false, adobeTransform: undefined, exif: undefined };
}
