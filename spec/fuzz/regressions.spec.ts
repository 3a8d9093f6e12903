// What the fuzzer found (scripts/fuzz/fuzz.ts --seed 1, before the fixes), each as its minimized input: the smallest
// change to a committed fixture that still failed the same way. Each now ends in a named one-line error, at once.
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { fixPngCrcs } from '../../scripts/fuzz/mutate';
import { Format, runInput } from '../../scripts/fuzz/targets';
import { fixturePath } from '../helpers/fixtures';

/** A safetensors file: the u64 header length, the header text, the data bytes. */
function safetensors(header: string, dataBytes = 4): Uint8Array {
  const h = Buffer.from(header), len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(dataBytes)]);
}

const deep = (n: number) => '['.repeat(n) + '1' + ']'.repeat(n);
const image = (name: string) => Buffer.from(fs.readFileSync(fixturePath('images', name)));

/** tiny.png (20x30) with another IHDR size, its CRC fixed so that the decoder reads on. */
function pngSized(width: number, height: number): Uint8Array {
  const b = image('tiny.png');
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  return fixPngCrcs(b);
}

/** A JPEG fixture with another SOF size (height, width). */
function jpegSized(name: string, height: number, width: number): Uint8Array {
  const b = image(name);
  const sof = [0xc0, 0xc2].map((m) => b.indexOf(Buffer.from([0xff, m]))).find((p) => p > 0)!;
  b.writeUInt16BE(height, sof + 5);
  b.writeUInt16BE(width, sof + 7);
  return b;
}

function config(edit: (c: Record<string, any>) => void, dir = 'models/tiny_a', file = 'config.json'): string {
  const c = JSON.parse(fs.readFileSync(fixturePath(...dir.split('/'), file), 'utf8'));
  edit(c);
  return JSON.stringify(c).replace(/"@DEEP"/g, deep(20000));
}

describe('fuzz findings, fixed', () => {
  let dir: string;
  before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-fuzz-regressions-'))));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const seedOf: Record<Format, string> = {
    png: '', jpeg: '', 'jpeg-progressive': '', safetensors: '', 'safetensors-index': '',
    config: fixturePath('models', 'tiny_a', 'config.json'),
  };
  /** Runs the fuzz target on `bytes`; `message` is the error with `D` standing for the folder the input is in. */
  const check = (format: Format, bytes: Uint8Array | string, message: string | RegExp, seedFile = seedOf[format]) => {
    const r = runInput(format, typeof bytes === 'string' ? Buffer.from(bytes) : bytes, dir, seedFile);
    expect(r.outcome, r.detail).to.equal('error');
    const got = r.detail.split(dir).join('D');
    if (typeof message === 'string') expect(got).to.equal(message);
    else expect(got).to.match(message);
    expect(r.ms, 'milliseconds').to.be.lessThan(1000);
  };

  describe('images: declared sizes refused before allocating', () => {
    it('a PNG declaring 30000x30000 (decoded for 47 s into 8.6 GB before)', () => {
      check('png', pngSized(30000, 30000), "ProcessorError: D/input.png: PNG of 30000x30000 = 900000000 pixels is over the limit of 89478485 (PIL's MAX_IMAGE_PIXELS)");
    });

    it('a PNG declaring 5000x5000 with the 1268 IDAT bytes of a 20x30 image', () => {
      check('png', pngSized(5000, 5000), 'ProcessorError: D/input.png: truncated or corrupt PNG: 5000x5000 needs 75005000 bytes of pixel data, more than its 1268 IDAT bytes can inflate to');
    });

    it('a progressive JPEG declaring 65535x30000 (seed 1 #26: a hang)', () => {
      check('jpeg-progressive', jpegSized('progressive.jpg', 30000, 65535), "ProcessorError: D/input.jpg: JPEG of 65535x30000 = 1966050000 pixels is over the limit of 89478485 (PIL's MAX_IMAGE_PIXELS)");
    });

    it('a 7371-byte baseline JPEG declaring 1000x48206 (seed 1 #979: a hang)', () => {
      check('jpeg', jpegSized('photo.jpg', 48206, 1000), 'ProcessorError: D/input.jpg: corrupt or unsupported JPEG: 1000x48206 needs at least 94157 bytes of coded data (1 bit per 8x8 block), the file has 7371');
    });
  });

  describe('safetensors headers', () => {
    it('data_offsets a number (seed 1 #117: TypeError "not iterable")', () => {
      check('safetensors', safetensors('{"t":{"dtype":"F32","shape":[1],"data_offsets":2147483648}}'), "SafetensorsError: D/model.safetensors: tensor 't': bad data_offsets 2147483648");
    });

    it('data_offsets true and a shape of 1e300 (seed 1 #2709)', () => {
      check('safetensors', safetensors('{"t":{"dtype":"I64","shape":[1,1e300],"data_offsets":true}}'), "SafetensorsError: D/model.safetensors: tensor 't': bad shape [1,1e+300]");
    });

    it('a shape nested 20000 deep (seed 1 #525: RangeError in JSON.stringify)', () => {
      check('safetensors', safetensors(`{"t":{"dtype":"F32","shape":${deep(20000)},"data_offsets":[0,4]}}`), "SafetensorsError: D/model.safetensors: tensor 't': bad shape [...]");
    });

    it('a dtype named after an Object.prototype key', () => {
      check('safetensors', safetensors('{"t":{"dtype":"toString","shape":[1],"data_offsets":[0,4]}}'), `SafetensorsError: D/model.safetensors: tensor 't': unsupported dtype "toString"`);
    });

    it('__metadata__ with a non-string value', () => {
      check('safetensors', safetensors('{"__metadata__":{"format":1}}', 0), 'SafetensorsError: D/model.safetensors: __metadata__: expected an object of strings, got {"format":1}');
    });
  });

  describe('model.safetensors.index.json', () => {
    const index = (value: unknown) => JSON.stringify({ weight_map: { 'model.x': value } });
    for (const [what, value] of [['a list (seed 1 #4)', [1, 2]], ['null (#64)', null], ['true (#226)', true], ["'' (#358: EISDIR)", '']] as const) {
      it(`a shard name that is ${what}`, () => {
        check('safetensors-index', index(value), `ConfigError: D/sharded/model.safetensors.index.json: weight_map."model.x": expected a shard file name, got ${JSON.stringify(value)}`);
      });
    }

    it("a shard name '.' (the folder itself)", () => {
      check('safetensors-index', index('.'), 'SafetensorsError: D/sharded: not a file');
    });

    it('a shard name with a line break (seed 1 #220: a two-line error)', () => {
      check('safetensors-index', index('two\nlines'), 'WeightLoadError: D/sharded/model.safetensors.index.json: shard "two\\nlines" is missing');
    });
  });

  describe('config.json and preprocessor_config.json', () => {
    it('JSON broken across lines gives a one-line error (seed 1 #77)', () => {
      check('config', '{\n  "model_type": "glm4v",\n  "vocab_size": tru\n}', /^ConfigError: D\/config\.json: not valid JSON \([^\n]+\)$/);
    });

    it('image_mean nested 20000 deep (seed 1 #173: RangeError in JSON.stringify)', () => {
      const text = config((c) => (c.image_mean = [0.5, 0.5, '@DEEP']), 'models/tiny_a', 'preprocessor_config.json');
      check('config', text, 'ConfigError: D/preprocessor_config.json: image_mean: expected 3 numbers (one per RGB channel), got [...]',
        fixturePath('models', 'tiny_a', 'preprocessor_config.json'));
    });

    it('rope_type nested 20000 deep (seed 1 #2795: RangeError in Array.join)', () => {
      check('config', config((c) => (c.text_config.rope_parameters.rope_type = '@DEEP')),
        "ConfigError: D/config.json: text_config.rope_parameters.rope_type: only 'default' is implemented, got [...]");
    });

    it('model_type a number (seed 1 #1799: the error did not name the file)', () => {
      check('config', config((c) => (c.model_type = 1e12)), "ConfigError: D/config.json: model_type: expected 'glm4v' or 'glm46v', got 1000000000000");
    });

    it('a string value with a line break stays on one line', () => {
      check('config', config((c) => (c.text_config.hidden_act = 'two\nlines')), "ConfigError: D/config.json: text_config.hidden_act: only 'silu' is implemented, got 'two\\nlines'");
    });
  });
});
