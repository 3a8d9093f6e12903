// Every image error names the file: decoding (corrupt, truncated, unsupported, too large) and the processor's
// transformers-worded checks (smart_resize's aspect ratio), in the library and through `glm46v generate --image`.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { loadImage, ProcessorError } from '../../processors/image_io';
import { Glm46VImageProcessor } from '../../processors/image_processor';
import { fixturePath } from '../helpers/fixtures';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'glm46v.js');
const BUILTIN = path.join(ROOT, 'assets', 'model');
const generate = (image: string) => spawnSync(process.execPath, [BIN, 'generate', '--image', image, '--prompt', 'What is it?', '--max-new-tokens', '1'],
  { encoding: 'utf8', env: { ...process.env, GLM46V_BACKEND: tf.getBackend() } });

/** The processor step of `generate`: decode, then smart_resize + patchify with the built-in model's config. */
const processImage = (file: string) => Glm46VImageProcessor.fromPretrained(BUILTIN).preprocess([loadImage(file)]);

function message(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(ProcessorError);
    return (e as Error).message;
  }
  throw new Error('expected a ProcessorError');
}

describe('image errors name the file', () => {
  let tmp: string;
  const files: Record<string, string> = {};
  const put = (name: string, bytes: Uint8Array) => (files[name] = path.join(tmp, name), fs.writeFileSync(files[name]!, bytes), files[name]!);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-image-errors-'));
    const wide = new PNG({ width: 20000, height: 10 });
    wide.data.fill(200);
    put('wide.png', PNG.sync.write(wide));
    const png = fs.readFileSync(fixturePath('images', 'tiny.png'));
    put('cut.png', png.subarray(0, 100));
    const huge = Buffer.from(png);
    huge.writeUInt32BE(10000, 16); // IHDR width and height; pngjs' CRC check comes after the size check
    huge.writeUInt32BE(10000, 20);
    put('huge.png', huge);
    const jpg = fs.readFileSync(fixturePath('images', 'photo.jpg'));
    put('cut.jpg', jpg.subarray(0, jpg.length >> 1));
    const deep = Buffer.from(jpg);
    deep[deep.indexOf(Buffer.from([0xff, 0xc0])) + 4] = 12; // SOF0 sample precision
    put('twelve.jpg', deep);
    put('notes.png', Buffer.from('hello, world\n'));
    put('empty.jpg', new Uint8Array(0));
  });

  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it("an aspect ratio over 200: transformers' smart_resize message, prefixed with the file", () => {
    expect(message(() => processImage(files['wide.png']!))).to.equal(`${files['wide.png']}: absolute aspect ratio must be smaller than 200, got 2000.0`);
  });

  it('an image given as pixels has its position in the list instead', () => {
    const img = { width: 20000, height: 10, data: new Uint8Array(20000 * 10 * 3) };
    expect(message(() => Glm46VImageProcessor.fromPretrained(BUILTIN).preprocess([img]))).to.equal('image 0: absolute aspect ratio must be smaller than 200, got 2000.0');
  });

  const decodeCases: Array<[string, string]> = [
    ['cut.png', 'truncated or corrupt PNG: 20x30 needs 1830 bytes of pixel data, more than its 0 IDAT bytes can inflate to'],
    ['huge.png', "PNG of 10000x10000 = 100000000 pixels is over the limit of 89478485 (PIL's MAX_IMAGE_PIXELS)"],
    ['cut.jpg', 'corrupt or unsupported JPEG: truncated entropy-coded data (no EOI)'],
    ['twelve.jpg', 'corrupt or unsupported JPEG: 12-bit samples are not supported'],
    ['notes.png', 'not a PNG or JPEG file (starts with 68 65 6c 6c 6f 2c 20 77)'],
    ['empty.jpg', 'empty image file'],
  ];
  for (const [name, text] of decodeCases) {
    it(`${name}: "${text}"`, () => {
      expect(message(() => loadImage(files[name]!))).to.equal(`${files[name]}: ${text}`);
    });
  }

  describe('glm46v generate --image FILE: exit 1 and one line', () => {
    for (const [name, text] of [decodeCases[1]!, decodeCases[2]!, decodeCases[4]!, ['wide.png', 'absolute aspect ratio must be smaller than 200, got 2000.0']] as const) {
      it(name, () => {
        const r = generate(files[name]!);
        expect(r.status, r.stderr).to.equal(1);
        expect(r.stdout).to.equal('');
        // every image is checked before the backend starts: the error is the only line
        expect(r.stderr).to.equal(`glm46v generate: ${files[name]}: ${text}\n`);
      });
    }
  });
});
