// JPEG coefficients -> RGB pixels exactly as libjpeg-turbo (what PIL and torchvision decode with) does by default:
// jidctint.c (ISLOW integer IDCT), jdsample.c ("fancy" triangle upsampling), jdcolor.c (fixed-point YCbCr->RGB).
// jpeg-js, which the package first meant to use, differs by up to 11 levels on a 4:2:0 photo (nearest-neighbour
// chroma, another IDCT, truncating colour conversion), which the processor's one-level parity cannot absorb.
import { ProcessorError } from './errors';
import { decodeJpegCoefficients, JpegComponent, JpegFrame } from './jpeg_entropy';

export interface DecodedJpeg {
  width: number;
  height: number;
  /** RGB, row-major */
  data: Uint8Array;
  /** TIFF bytes of the Exif segment, if any (the orientation is applied by the caller) */
  exif: Uint8Array | undefined;
}

const CONST_BITS = 13, PASS1_BITS = 2;
const FIX_0_298631336 = 2446, FIX_0_390180644 = 3196, FIX_0_541196100 = 4433, FIX_0_765366865 = 6270;
const FIX_0_899976223 = 7373, FIX_1_175875602 = 9633, FIX_1_501321110 = 12299, FIX_1_847759065 = 15137;
const FIX_1_961570560 = 16069, FIX_2_053119869 = 16819, FIX_2_562915447 = 20995, FIX_3_072711026 = 25172;

/** libjpeg's post-IDCT range limit, indexed by (centered sample & 1023): clamps to 0..255 within +-512. */
const IDCT_LIMIT = (() => {
  const t = new Uint8Array(1024);
  for (let i = 0; i < 1024; i++) t[i] = i < 128 ? i + 128 : i < 512 ? 255 : i < 896 ? 0 : i - 896;
  return t;
})();

/** DESCALE of jdct.h: round by adding half, then an arithmetic shift (exact on doubles, unlike `>>`). */
const descale = (x: number, n: number) => Math.floor((x + 2 ** (n - 1)) / 2 ** n);

/**
 * jpeg_idct_islow: dequantizes and inverse-transforms one block of `co` at `off` (natural order) into `out`
 * (stride `stride`). Arithmetic runs on doubles: the products can pass 2^31 on odd inputs, where libjpeg uses 64 bits.
 */
function idctIslow(co: Int16Array, off: number, qt: Uint16Array, ws: Float64Array, out: Uint8Array, o: number, stride: number): void {
  for (let c = 0; c < 8; c++) {
    const i = off + c;
    if (co[i + 8] === 0 && co[i + 16] === 0 && co[i + 24] === 0 && co[i + 32] === 0 && co[i + 40] === 0 &&
      co[i + 48] === 0 && co[i + 56] === 0) {
      const dc = co[i]! * qt[c]! * (1 << PASS1_BITS);
      for (let r = 0; r < 8; r++) ws[r * 8 + c] = dc;
      continue;
    }
    let z2 = co[i + 16]! * qt[c + 16]!, z3 = co[i + 48]! * qt[c + 48]!;
    let z1 = (z2 + z3) * FIX_0_541196100;
    let tmp2 = z1 + z3 * -FIX_1_847759065, tmp3 = z1 + z2 * FIX_0_765366865;
    z2 = co[i]! * qt[c]!;
    z3 = co[i + 32]! * qt[c + 32]!;
    let tmp0 = (z2 + z3) * (1 << CONST_BITS), tmp1 = (z2 - z3) * (1 << CONST_BITS);
    const tmp10 = tmp0 + tmp3, tmp13 = tmp0 - tmp3, tmp11 = tmp1 + tmp2, tmp12 = tmp1 - tmp2;
    tmp0 = co[i + 56]! * qt[c + 56]!;
    tmp1 = co[i + 40]! * qt[c + 40]!;
    tmp2 = co[i + 24]! * qt[c + 24]!;
    tmp3 = co[i + 8]! * qt[c + 8]!;
    [tmp0, tmp1, tmp2, tmp3] = oddPart(tmp0, tmp1, tmp2, tmp3);
    const n = CONST_BITS - PASS1_BITS;
    ws[c] = descale(tmp10 + tmp3, n);
    ws[56 + c] = descale(tmp10 - tmp3, n);
    ws[8 + c] = descale(tmp11 + tmp2, n);
    ws[48 + c] = descale(tmp11 - tmp2, n);
    ws[16 + c] = descale(tmp12 + tmp1, n);
    ws[40 + c] = descale(tmp12 - tmp1, n);
    ws[24 + c] = descale(tmp13 + tmp0, n);
    ws[32 + c] = descale(tmp13 - tmp0, n);
  }
  const n = CONST_BITS + PASS1_BITS + 3;
  for (let r = 0; r < 8; r++) {
    const w = r * 8, p = o + r * stride;
    if (ws[w + 1] === 0 && ws[w + 2] === 0 && ws[w + 3] === 0 && ws[w + 4] === 0 && ws[w + 5] === 0 &&
      ws[w + 6] === 0 && ws[w + 7] === 0) {
      const v = IDCT_LIMIT[descale(ws[w]!, PASS1_BITS + 3) & 1023]!;
      for (let k = 0; k < 8; k++) out[p + k] = v;
      continue;
    }
    const z2 = ws[w + 2]!, z3 = ws[w + 6]!;
    const z1 = (z2 + z3) * FIX_0_541196100;
    const e2 = z1 + z3 * -FIX_1_847759065, e3 = z1 + z2 * FIX_0_765366865;
    const e0 = (ws[w]! + ws[w + 4]!) * (1 << CONST_BITS), e1 = (ws[w]! - ws[w + 4]!) * (1 << CONST_BITS);
    const t10 = e0 + e3, t13 = e0 - e3, t11 = e1 + e2, t12 = e1 - e2;
    const [o0, o1, o2, o3] = oddPart(ws[w + 7]!, ws[w + 5]!, ws[w + 3]!, ws[w + 1]!);
    out[p] = IDCT_LIMIT[descale(t10 + o3, n) & 1023]!;
    out[p + 7] = IDCT_LIMIT[descale(t10 - o3, n) & 1023]!;
    out[p + 1] = IDCT_LIMIT[descale(t11 + o2, n) & 1023]!;
    out[p + 6] = IDCT_LIMIT[descale(t11 - o2, n) & 1023]!;
    out[p + 2] = IDCT_LIMIT[descale(t12 + o1, n) & 1023]!;
    out[p + 5] = IDCT_LIMIT[descale(t12 - o1, n) & 1023]!;
    out[p + 3] = IDCT_LIMIT[descale(t13 + o0, n) & 1023]!;
    out[p + 4] = IDCT_LIMIT[descale(t13 - o0, n) & 1023]!;
  }
}

/** The odd part of jpeg_idct_islow, inputs (in7, in5, in3, in1), outputs (tmp0..tmp3). */
function oddPart(t0: number, t1: number, t2: number, t3: number): [number, number, number, number] {
  let z1 = t0 + t3, z2 = t1 + t2, z3 = t0 + t2, z4 = t1 + t3;
  const z5 = (z3 + z4) * FIX_1_175875602;
  t0 *= FIX_0_298631336;
  t1 *= FIX_2_053119869;
  t2 *= FIX_3_072711026;
  t3 *= FIX_1_501321110;
  z1 *= -FIX_0_899976223;
  z2 *= -FIX_2_562915447;
  z3 = z3 * -FIX_1_961570560 + z5;
  z4 = z4 * -FIX_0_390180644 + z5;
  return [t0 + z1 + z3, t1 + z2 + z4, t2 + z2 + z3, t3 + z1 + z4];
}

/** All blocks of a component -> its sample plane, blocksPerLine*8 wide (padding blocks included). */
function componentPlane(c: JpegComponent, qt: Uint16Array): Uint8Array {
  const stride = c.blocksPerLine * 8;
  const plane = new Uint8Array(stride * c.blocksPerColumn * 8);
  const ws = new Float64Array(64);
  for (let br = 0; br < c.blocksPerColumn; br++) {
    for (let bc = 0; bc < c.blocksPerLine; bc++) {
      idctIslow(c.coeffs, (br * c.blocksPerLine + bc) * 64, qt, ws, plane, br * 8 * stride + bc * 8, stride);
    }
  }
  return plane;
}

/**
 * jdsample.c: a component plane to full resolution (width x height). Fancy h2v1 / h2v2 (when the component is
 * wider than 2 samples) and h1v2, else replication; rows above the top and below the component's last real row
 * repeat the edge row, as jdmainct.c's context pointers do.
 */
function upsample(c: JpegComponent, plane: Uint8Array, frame: JpegFrame, name: string): Uint8Array {
  const W = frame.width, H = frame.height, stride = c.blocksPerLine * 8, dw = c.width;
  const rh = frame.maxH / c.h, rv = frame.maxV / c.v;
  if (!Number.isInteger(rh) || !Number.isInteger(rv)) {
    throw new ProcessorError(`${name}: fractional JPEG chroma sampling (${c.h}x${c.v} of ${frame.maxH}x${frame.maxV}) is not supported`);
  }
  const out = new Uint8Array(W * H);
  const row = (k: number) => Math.min(Math.max(k, 0), c.height - 1) * stride;
  const line = new Int32Array(2 * dw + 2);
  for (let y = 0; y < H; y++) {
    const o = y * W;
    if (rh === 1 && rv === 1) out.set(plane.subarray(row(y), row(y) + W), o);
    else if (rv === 2 && (rh === 2 || rh === 1) && (rh === 1 || dw > 2)) {
      const k = y >> 1, near = row(k), far = row(y & 1 ? k + 1 : k - 1);
      if (rh === 1) {
        const bias = y & 1 ? 2 : 1;
        for (let x = 0; x < W; x++) out[o + x] = (plane[near + x]! * 3 + plane[far + x]! + bias) >> 2;
        continue;
      }
      for (let i = 0; i < dw; i++) line[i] = plane[near + i]! * 3 + plane[far + i]!;
      fancyRow(line, dw, out, o, W, 4, 8, 7);
    } else if (rv === 1 && rh === 2 && dw > 2) {
      const near = row(y);
      for (let i = 0; i < dw; i++) line[i] = plane[near + i]!;
      fancyRow(line, dw, out, o, W, 2, 1, 2);
    } else {
      const src = row(Math.floor(y / rv));
      for (let x = 0; x < W; x++) out[o + x] = plane[src + Math.floor(x / rh)]!;
    }
  }
  return out;
}

/**
 * The horizontal half of h2v1 / h2v2 fancy upsampling over precomputed (column) sums s[0..dw): each input sample
 * gives two outputs, 3/4 of itself + 1/4 of the neighbour, with the rounding biases of jdsample.c.
 * `shift` is 2 (h2v1) or 4 (h2v2, where the sums already carry the vertical 3:1 weights).
 */
function fancyRow(s: Int32Array, dw: number, out: Uint8Array, o: number, W: number, shift: number, biasLeft: number, biasRight: number): void {
  const edge = shift === 4 ? 4 : 1; // first and last outputs: the sample alone (h2v1) or sum * 4 (h2v2)
  const put = (x: number, v: number) => {
    if (x < W) out[o + x] = v;
  };
  put(0, shift === 4 ? (s[0]! * 4 + 8) >> 4 : s[0]!);
  put(1, (s[0]! * 3 + s[1]! + biasRight) >> shift);
  for (let i = 1; i < dw - 1; i++) {
    put(2 * i, (s[i]! * 3 + s[i - 1]! + biasLeft) >> shift);
    put(2 * i + 1, (s[i]! * 3 + s[i + 1]! + biasRight) >> shift);
  }
  const l = dw - 1;
  put(2 * l, (s[l]! * 3 + s[l - 1]! + biasLeft) >> shift);
  put(2 * l + 1, edge === 4 ? (s[l]! * 4 + 7) >> 4 : s[l]!);
}

/** jdcolor.c build_ycc_rgb_table: 16-bit fixed point, rounding folded into the tables. */
const YCC = (() => {
  const SCALEBITS = 16, ONE_HALF = 1 << (SCALEBITS - 1);
  const FIX = (x: number) => Math.floor(x * (1 << SCALEBITS) + 0.5);
  const crR = new Int32Array(256), cbB = new Int32Array(256), crG = new Int32Array(256), cbG = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    const x = i - 128;
    crR[i] = (FIX(1.402) * x + ONE_HALF) >> SCALEBITS;
    cbB[i] = (FIX(1.772) * x + ONE_HALF) >> SCALEBITS;
    crG[i] = -FIX(0.71414) * x;
    cbG[i] = -FIX(0.34414) * x + ONE_HALF;
  }
  return { crR, cbB, crG, cbG, SCALEBITS };
})();

const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** libjpeg's default colour space of a 3-component file (jdapimin.c default_decompress_parms). */
function isYCbCr(frame: JpegFrame): boolean {
  if (frame.sawJfif) return true;
  if (frame.adobeTransform !== undefined) return frame.adobeTransform !== 0;
  const [a, b, c] = frame.components.map((x) => x.id);
  return !(a === 82 && b === 71 && c === 66); // 'R','G','B' component ids mean RGB; anything else YCbCr
}

/** Decodes a JPEG file to RGB as libjpeg-turbo does with its default settings (ISLOW, fancy upsampling). */
export function decodeJpeg(data: Uint8Array, name: string): DecodedJpeg {
  const frame = decodeJpegCoefficients(data, name);
  const { width: W, height: H } = frame;
  const planes = frame.components.map((c) => upsample(c, componentPlane(c, frame.quantTables[c.quantTable]!), frame, name));
  const rgb = new Uint8Array(W * H * 3);
  if (planes.length === 1) {
    const g = planes[0]!;
    for (let i = 0, j = 0; i < W * H; i++, j += 3) rgb[j] = rgb[j + 1] = rgb[j + 2] = g[i]!;
  } else if (isYCbCr(frame)) {
    const [Y, Cb, Cr] = planes as [Uint8Array, Uint8Array, Uint8Array];
    const { crR, cbB, crG, cbG, SCALEBITS } = YCC;
    for (let i = 0, j = 0; i < W * H; i++, j += 3) {
      const y = Y[i]!, cb = Cb[i]!, cr = Cr[i]!;
      rgb[j] = clamp255(y + crR[cr]!);
      rgb[j + 1] = clamp255(y + ((cbG[cb]! + crG[cr]!) >> SCALEBITS));
      rgb[j + 2] = clamp255(y + cbB[cb]!);
    }
  } else {
    const [R, G, B] = planes as [Uint8Array, Uint8Array, Uint8Array];
    for (let i = 0, j = 0; i < W * H; i++, j += 3) {
      rgb[j] = R[i]!;
      rgb[j + 1] = G[i]!;
      rgb[j + 2] = B[i]!;
    }
  }
  return { width: W, height: H, data: rgb, exif: frame.exif };
}
