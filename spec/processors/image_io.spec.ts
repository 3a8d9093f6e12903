import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import { PNG } from 'pngjs';
import { applyExifOrientation, decodeImage, exifOrientation, loadImage, ProcessorError, RgbImage } from '../../processors/image_io';
import { fixturePath } from '../helpers/fixtures';

const image = (name: string) => fixturePath('images', name);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-img-'));

/** A minimal TIFF block with IFD0 holding only the orientation tag. */
function tiff(orientation: number, bigEndian = false): Uint8Array {
  const b = Buffer.alloc(26);
  const u16 = (v: number, o: number) => (bigEndian ? b.writeUInt16BE(v, o) : b.writeUInt16LE(v, o));
  b.write(bigEndian ? 'MM' : 'II', 0, 'latin1');
  u16(42, 2);
  bigEndian ? b.writeUInt32BE(8, 4) : b.writeUInt32LE(8, 4);
  u16(1, 8); // one entry
  u16(0x0112, 10);
  u16(3, 12); // SHORT
  bigEndian ? b.writeUInt32BE(1, 14) : b.writeUInt32LE(1, 14);
  u16(orientation, 18);
  return b;
}

/** A PNG from raw scanlines (filter 0), with optional extra chunks before IDAT (e.g. tRNS). */
function makePng(w: number, h: number, depth: number, colorType: number, rows: number[][], extra: [string, number[]][] = []): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([head, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([depth, colorType, 0, 0, 0], 8);
  const raw = Buffer.concat(rows.map((r) => Buffer.from([0, ...r])));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    ...extra.map(([t, d]) => chunk(t, Buffer.from(d))), chunk('IDAT', zlib.deflateSync(Buffer.concat([raw]))), chunk('IEND', Buffer.alloc(0))]);
}

const reds = (img: RgbImage) => Array.from(img.data.filter((_, i) => i % 3 === 0));

function expectThrowsNaming(fn: () => unknown, file: string, what: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'should throw').to.be.instanceOf(ProcessorError);
  expect((err as Error).message).to.include(file);
  expect((err as Error).message).to.match(what);
}

describe('image_io', () => {
  it('decodes every committed test image with its upright size', () => {
    const sizes: Record<string, [number, number]> = {
      'photo.jpg': [157, 118], 'progressive.jpg': [120, 90], 'wide.jpg': [1000, 60], 'oriented.jpg': [32, 48],
      'alpha.png': [64, 48], 'gray_alpha.png': [36, 30], 'gray.png': [40, 56], 'palette.png': [42, 70],
      'tiny.png': [20, 30], 'rgb16.png': [84, 28], 'gray16.png': [30, 26],
    };
    for (const [name, [w, h]] of Object.entries(sizes)) {
      const img = loadImage(image(name));
      expect([img.width, img.height], name).to.deep.equal([w, h]);
      expect(img.data.length, name).to.equal(w * h * 3);
    }
  });

  it('drops alpha instead of compositing it (RGBA and palette tRNS): the RGB samples as stored', () => {
    for (const name of ['alpha.png', 'palette.png']) {
      const rgba = PNG.sync.read(fs.readFileSync(image(name))); // pngjs: RGBA with the palette looked up
      const ours = loadImage(image(name));
      let transparent = 0, differ = 0;
      for (let i = 0; i < ours.width * ours.height; i++) {
        for (let c = 0; c < 3; c++) if (ours.data[i * 3 + c] !== rgba.data[i * 4 + c]) differ++;
        if (rgba.data[i * 4 + 3] === 0) transparent++;
      }
      expect(differ, `${name}: samples differing from the stored RGB`).to.equal(0);
      expect(transparent, `${name} has transparent pixels`).to.be.greaterThan(0);
    }
  });

  it('expands grayscale to three equal channels', () => {
    for (const name of ['gray.png', 'gray_alpha.png', 'oriented.jpg']) {
      const { data } = loadImage(image(name));
      for (let i = 0; i < data.length; i += 3) {
        if (data[i] !== data[i + 1] || data[i] !== data[i + 2]) throw new Error(`${name}: pixel ${i / 3} is not gray`);
      }
    }
  });

  // Sample conversions of PIL's convert("RGB") (checked against Pillow 13 when this was written).
  it('keeps the colour of tRNS colour-key pixels (pngjs zeroes them)', () => {
    const gray = decodeImage(makePng(3, 1, 8, 0, [[77, 10, 77]], [['tRNS', [0, 77]]]), 'key.png');
    expect(reds(gray)).to.deep.equal([77, 10, 77]);
    const rgb = decodeImage(makePng(2, 1, 8, 2, [[10, 20, 30, 1, 2, 3]], [['tRNS', [0, 10, 0, 20, 0, 30]]]), 'key.png');
    expect(Array.from(rgb.data)).to.deep.equal([10, 20, 30, 1, 2, 3]);
  });

  it('scales 1/2/4-bit gray to 0..255, keeps the high byte of 16-bit colour, clips 16-bit gray at 255', () => {
    expect(reds(decodeImage(makePng(4, 1, 2, 0, [[0b00011011]]), 'g2.png'))).to.deep.equal([0, 85, 170, 255]);
    expect(reds(decodeImage(makePng(2, 1, 4, 0, [[0x0f]]), 'g4.png'))).to.deep.equal([0, 255]);
    const rgb16 = decodeImage(makePng(1, 1, 16, 2, [[0x12, 0x34, 0xff, 0xff, 0x00, 0xff]]), 'c16.png');
    expect(Array.from(rgb16.data)).to.deep.equal([0x12, 0xff, 0x00]);
    const g16 = decodeImage(makePng(4, 1, 16, 0, [[0, 0, 0, 255, 1, 0, 255, 255]]), 'g16.png');
    expect(reds(g16)).to.deep.equal([0, 255, 255, 255]);
  });

  it('detects the format from the magic bytes, not the extension', () => {
    const bytes = fs.readFileSync(image('photo.jpg'));
    const asPng = decodeImage(bytes, 'looks-like.png');
    expect(Buffer.from(asPng.data).equals(Buffer.from(loadImage(image('photo.jpg')).data))).to.equal(true);
  });

  describe('errors name the file', () => {
    const write = (name: string, bytes: Uint8Array) => {
      const f = path.join(tmp, name);
      fs.writeFileSync(f, bytes);
      return f;
    };

    it('empty file', () => {
      const f = write('empty.png', new Uint8Array(0));
      expectThrowsNaming(() => loadImage(f), f, /empty image file/);
    });

    it('truncated PNG', () => {
      const bytes = fs.readFileSync(image('alpha.png'));
      const f = write('cut.png', bytes.subarray(0, bytes.length >> 1));
      expectThrowsNaming(() => loadImage(f), f, /corrupt PNG/);
    });

    it('PNG with a damaged IDAT (CRC mismatch)', () => {
      const bytes = Buffer.from(fs.readFileSync(image('tiny.png')));
      bytes[bytes.indexOf('IDAT') + 10] ^= 0xff;
      const f = write('crc.png', bytes);
      expectThrowsNaming(() => loadImage(f), f, /corrupt PNG/);
    });

    it('truncated JPEG', () => {
      const bytes = fs.readFileSync(image('photo.jpg'));
      const f = write('cut.jpg', bytes.subarray(0, bytes.length >> 1));
      expectThrowsNaming(() => loadImage(f), f, /corrupt or unsupported JPEG: truncated/);
    });

    it('JPEG with only a header', () => {
      const f = write('header.jpg', new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00, 0xff, 0xd9]));
      expectThrowsNaming(() => loadImage(f), f, /no image data/);
    });

    it('JPEG whose entropy data is garbage', () => {
      const bytes = Buffer.from(fs.readFileSync(image('progressive.jpg')));
      const sos = bytes.indexOf(Buffer.from([0xff, 0xda]));
      for (let i = sos + 20; i < bytes.length - 2; i++) bytes[i] = 0xfe; // long runs of 1 bits: no valid Huffman code
      const f = write('garbage.jpg', bytes);
      expectThrowsNaming(() => loadImage(f), f, /corrupt or unsupported JPEG/);
    });

    it('neither PNG nor JPEG', () => {
      const f = write('anim.gif', Buffer.from('GIF89a\x01\x00\x01\x00', 'latin1'));
      expectThrowsNaming(() => loadImage(f), f, /not a PNG or JPEG file \(starts with 47 49 46 38/);
    });

    it('missing file', () => {
      const f = path.join(tmp, 'nope.jpg');
      expectThrowsNaming(() => loadImage(f), f, /cannot read image \(ENOENT\)/);
    });
  });

  describe('EXIF orientation', () => {
    // a b c
    // d e f    (3 wide, 2 high; one channel used as a label)
    const src: RgbImage = { width: 3, height: 2, data: new Uint8Array([..."abcdef"].flatMap((ch) => [ch.charCodeAt(0), 0, 0])) };
    const rows = (img: RgbImage) => {
      const out: string[] = [];
      for (let y = 0; y < img.height; y++) {
        let s = '';
        for (let x = 0; x < img.width; x++) s += String.fromCharCode(img.data[(y * img.width + x) * 3]!);
        out.push(s);
      }
      return out.join('/');
    };

    it('reads the tag in both byte orders, 1 when absent', () => {
      expect(exifOrientation(tiff(6))).to.equal(6);
      expect(exifOrientation(tiff(8, true))).to.equal(8);
      expect(exifOrientation(undefined)).to.equal(1);
      expect(exifOrientation(new Uint8Array([1, 2, 3]))).to.equal(1);
      expect(exifOrientation(tiff(9))).to.equal(1);
    });

    it('transposes like PIL ImageOps.exif_transpose for all 8 values', () => {
      const want = ['abc/def', 'cba/fed', 'fed/cba', 'def/abc', 'ad/be/cf', 'da/eb/fc', 'fc/eb/da', 'cf/be/ad'];
      want.forEach((w, i) => expect(rows(applyExifOrientation(src, tiff(i + 1))), `orientation ${i + 1}`).to.equal(w));
    });

    it('applies the orientation of a JPEG file (oriented.jpg is stored 48x32 with orientation 6)', () => {
      const bytes = fs.readFileSync(image('oriented.jpg'));
      const app1 = bytes.indexOf('Exif');
      expect(exifOrientation(bytes.subarray(app1 + 6))).to.equal(6);
      const img = loadImage(image('oriented.jpg'));
      expect([img.width, img.height]).to.deep.equal([32, 48]);
    });
  });
});
