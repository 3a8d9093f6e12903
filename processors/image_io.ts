// Image files -> RGB pixels the way transformers reads an image file for the GLM-V processors
// (image_utils.load_image_as_tensor: torchvision decode_image(mode=RGB) with the EXIF orientation applied).
// That drops alpha (RGBA, LA, palette or colour-key tRNS) rather than compositing it, exactly as PIL's
// convert("RGB") does; only a PIL image handed straight to the processor gets composited on white.
import * as fs from 'fs';
import { PNG } from 'pngjs';
import { checkImageSize, ProcessorError } from './errors';
import { decodeJpeg } from './jpeg_pixels';

export { MAX_IMAGE_PIXELS, ProcessorError } from './errors';

/** 8-bit RGB pixels, row-major (`data[(y * width + x) * 3 + c]`). */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
  /** the file it was read from (set by loadImage and decodeImage), named by the processors' errors */
  source?: string;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Reads and decodes a PNG or JPEG file; errors name the file. */
export function loadImage(file: string): RgbImage {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new ProcessorError(`${file}: cannot read image (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeImage(bytes, file);
}

/**
 * Decodes PNG (any colour type, 1 to 16 bits, interlaced or not) or JPEG (baseline or progressive, grayscale or
 * colour) bytes to RGB. The format comes from the magic bytes, not the name; `name` is only for messages.
 */
export function decodeImage(bytes: Uint8Array, name: string): RgbImage {
  if (bytes.length === 0) throw new ProcessorError(`${name}: empty image file`);
  const isPng = PNG_SIGNATURE.every((b, i) => bytes[i] === b);
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
  if (!isPng && !isJpeg) {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new ProcessorError(`${name}: not a PNG or JPEG file (starts with ${head})`);
  }
  try {
    if (isPng) return { ...applyExifOrientation(decodePng(bytes, name), findPngExif(bytes)), source: name };
    const jpeg = decodeJpeg(bytes, name);
    return { ...applyExifOrientation(jpeg, jpeg.exif), source: name };
  } catch (e) {
    if (e instanceof ProcessorError) throw e;
    throw new ProcessorError(`${name}: corrupt ${isPng ? 'PNG' : 'JPEG'} (${(e as Error).message})`);
  }
}

interface DecodedPng {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  transColor?: number[];
  /** RGBA; palette images already looked up; raw sample values (skipRescale), Uint16Array when 16-bit */
  data: Uint8Array | Uint16Array;
}

/**
 * PNG -> RGB with PIL's convert("RGB") semantics (torchvision's RGB mode agrees on every 8-bit file):
 * low bit depths scale to 0..255, 16-bit colour keeps the high byte, and 16-bit gray ("I;16" in PIL) is clipped
 * at 255, not scaled (torchvision returns uint16 there, which the HF processor cannot use).
 */
function decodePng(bytes: Uint8Array, name: string): RgbImage {
  checkPngSize(bytes, name);
  let png: DecodedPng;
  try {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    png = PNG.sync.read(buf, { skipRescale: true }) as unknown as DecodedPng;
  } catch (e) {
    throw new ProcessorError(`${name}: corrupt PNG (${(e as Error).message})`);
  }
  const { width, height, depth, colorType, transColor, data } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const scale = colorType === 3 ? null : lowDepthScale(depth, colorType);
  // pngjs zeroes all four channels of a pixel equal to the tRNS colour key; convert("RGB") keeps that colour.
  const key = colorType !== 3 && transColor ? (transColor.length === 1 ? [transColor[0]!, transColor[0]!, transColor[0]!] : transColor) : null;
  for (let i = 0, s = 0, d = 0; i < n; i++, s += 4, d += 3) {
    for (let c = 0; c < 3; c++) {
      let v = key && data[s + 3] === 0 ? key[c]! : data[s + c]!;
      if (scale) v = scale(v);
      out[d + c] = v;
    }
  }
  return { width, height, data: out };
}

function lowDepthScale(depth: number, colorType: number): ((v: number) => number) | null {
  if (depth === 8) return null;
  if (depth === 16) return colorType === 0 ? (v) => (v > 255 ? 255 : v) : (v) => v >> 8;
  const k = 255 / ((1 << depth) - 1); // 1, 2, 4-bit gray: 255, 85, 17 per step
  return (v) => v * k;
}

/** The chunks of a PNG as (type, data) pairs, up to IEND or the first chunk that runs past the end. */
function* pngChunks(bytes: Uint8Array): Generator<[string, Uint8Array]> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let p = 8; p + 12 <= bytes.length;) {
    const len = view.getUint32(p), type = String.fromCharCode(...bytes.subarray(p + 4, p + 8));
    if (p + 12 + len > bytes.length || type === 'IEND') return;
    yield [type, bytes.subarray(p + 8, p + 8 + len)];
    p += 12 + len;
  }
}

/** The TIFF bytes of a PNG eXIf chunk (PIL and libpng read the orientation from it), if any. */
function findPngExif(bytes: Uint8Array): Uint8Array | undefined {
  for (const [type, data] of pngChunks(bytes)) {
    if (type !== 'eXIf') continue;
    const prefixed = String.fromCharCode(...data.subarray(0, 6)) === 'Exif\0\0';
    return prefixed ? data.subarray(6) : data;
  }
  return undefined;
}

const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** deflate's largest expansion: a 258-byte match in 2 bits */
const DEFLATE_MAX_RATIO = 1032;

/**
 * Refuses, before pngjs allocates the image (it sizes its inflate buffer from IHDR alone), a PNG over
 * MAX_IMAGE_PIXELS or one whose IDAT chunks are too small to inflate to the rows IHDR declares.
 */
function checkPngSize(bytes: Uint8Array, name: string): void {
  if (bytes.length < 33 || String.fromCharCode(...bytes.subarray(12, 16)) !== 'IHDR') return; // pngjs names it
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(16), height = view.getUint32(20), depth = bytes[24]!, channels = PNG_CHANNELS[bytes[25]!];
  checkImageSize(name, 'PNG', width, height);
  if (channels === undefined || ![1, 2, 4, 8, 16].includes(depth)) return;
  const raw = (Math.ceil((width * channels * depth) / 8) + 1) * height;
  let idat = 0;
  for (const [type, data] of pngChunks(bytes)) if (type === 'IDAT') idat += data.length;
  if (raw > DEFLATE_MAX_RATIO * idat) {
    throw new ProcessorError(`${name}: truncated or corrupt PNG: ${width}x${height} needs ${raw} bytes of pixel data, more than its ${idat} IDAT bytes can inflate to`);
  }
}

/** EXIF tag 0x0112 of IFD0 (1..8), 1 when absent or unreadable. */
export function exifOrientation(tiff: Uint8Array | undefined): number {
  if (!tiff || tiff.length < 8) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const le = tiff[0] === 0x49 && tiff[1] === 0x49;
  if (!le && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  const ifd = view.getUint32(4, le);
  if (ifd + 2 > tiff.length) return 1;
  const count = view.getUint16(ifd, le);
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > tiff.length) return 1;
    if (view.getUint16(e, le) === 0x0112) {
      const v = view.getUint16(e + 2, le) === 3 ? view.getUint16(e + 8, le) : view.getUint32(e + 8, le);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/**
 * PIL's ImageOps.exif_transpose: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise,
 * 7 transverse, 8 rotate 90 counter-clockwise. Each output pixel reads source (sx, sy).
 */
export function applyExifOrientation(img: RgbImage, tiff: Uint8Array | undefined): RgbImage {
  const o = exifOrientation(tiff);
  if (o === 1) return { width: img.width, height: img.height, data: img.data };
  const W = img.width, H = img.height, swap = o >= 5;
  const ow = swap ? H : W, oh = swap ? W : H;
  const out = new Uint8Array(ow * oh * 3);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number, sy: number;
      switch (o) {
        case 2: sx = W - 1 - x; sy = y; break;
        case 3: sx = W - 1 - x; sy = H - 1 - y; break;
        case 4: sx = x; sy = H - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = H - 1 - x; break;
        case 7: sx = W - 1 - y; sy = H - 1 - x; break;
        default: sx = W - 1 - y; sy = x; break;
      }
      const s = (sy * W + sx) * 3, d = (y * ow + x) * 3;
      out[d] = img.data[s]!;
      out[d + 1] = img.data[s + 1]!;
      out[d + 2] = img.data[s + 2]!;
    }
  }
  return { width: ow, height: oh, data: out };
}
