import { expect } from 'chai';
import * as fs from 'fs';
import * as jpeg from 'jpeg-js';
import * as os from 'os';
import * as path from 'path';
import { ConfigError } from '../../lib/config';
import { decodeImage, loadImage, ProcessorError, RgbImage } from '../../processors/image_io';
import { Glm46VImageProcessor, Glm4vImageProcessor, patchify } from '../../processors/image_processor';
import { expectEqualInts } from '../helpers/expect_close';
import { fixturePath, loadReference, Reference } from '../helpers/fixtures';

const GLM41V = fixturePath('glm-configs', 'GLM-4.1V-9B-Thinking');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-ip-'));

function configDir(name: string, config: unknown): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(config));
  return dir;
}

/** The reference file's images, decoded. */
function images(ref: Reference): { names: string[]; imgs: RgbImage[] } {
  const names = JSON.parse(ref.metadata.images!) as string[];
  return { names, imgs: names.map((f) => loadImage(path.resolve(path.dirname(ref.file), f))) };
}

describe('Glm4vImageProcessor / Glm46VImageProcessor', () => {
  // transformers 5.24's default (torchvision) Glm4vImageProcessor / Glm46VImageProcessor on the committed images.
  for (const name of ['glm41v_config', 'small_batch', 'no_normalize']) {
    it(`${name}: image_grid_thw equal, pixel_values equal to the reference (bar: one 8-bit step, 0.016)`, function () {
      const ref = loadReference(fixturePath('image_processor', `${name}.safetensors`));
      const { names, imgs } = images(ref);
      const proc = Glm4vImageProcessor.fromPretrained(ref.modelDir);
      const out = proc.preprocess(imgs);
      const pv = ref.get('proc:pixel_values'), grids = ref.get('proc:image_grid_thw');
      expectEqualInts(out.imageGridThw.flat(), grids.data, `${name} image_grid_thw`);
      expect(out.shape).to.deep.equal(pv.shape);
      const want = pv.data as Float32Array, cols = out.shape[1];
      let row = 0, worst = 0;
      out.imageGridThw.forEach(([t, h, w], i) => {
        const n = t! * h! * w! * cols;
        let max = 0, sum = 0;
        for (let k = row * cols; k < row * cols + n; k++) {
          const d = Math.abs(out.pixelValues[k]! - want[k]!);
          sum += d;
          if (!(d <= max)) max = d;
        }
        console.log(`      ${names[i]}: grid ${t}x${h}x${w}, max abs diff ${max.toExponential(2)}, mean ${(sum / n).toExponential(2)}`);
        expect(max, `${names[i]} max abs diff`).to.be.at.most(0.016);
        worst = Math.max(worst, max);
        row += t! * h! * w!;
      });
      // Decoding, resizing and normalizing are exact ports: anything above float32 noise is a bug, not a tolerance.
      expect(worst, `${name} worst max abs diff`).to.be.at.most(1e-6);
    });
  }

  it('a batch of different sizes is the concatenation of the images processed one by one', () => {
    const ref = loadReference(fixturePath('image_processor', 'small_batch.safetensors'));
    const { imgs } = images(ref);
    const proc = Glm46VImageProcessor.fromPretrained(ref.modelDir);
    const batch = proc.preprocess(imgs);
    const singles = imgs.map((img) => proc.preprocess([img]));
    expect(batch.imageGridThw).to.deep.equal(singles.map((s) => s.imageGridThw[0]));
    expect(batch.shape[0]).to.equal(singles.reduce((a, s) => a + s.shape[0], 0));
    let o = 0;
    for (const s of singles) {
      expect(Buffer.from(batch.pixelValues.buffer, o * 4, s.pixelValues.length * 4).equals(Buffer.from(s.pixelValues.buffer))).to.equal(true);
      o += s.pixelValues.length;
    }
  });

  it('with do_resize false an image already a multiple of 28 gives the same rows; another one is refused', () => {
    const ref = loadReference(fixturePath('image_processor', 'small_batch.safetensors'));
    const { names, imgs } = images(ref);
    const config = JSON.parse(ref.metadata.preprocessor_config!);
    const proc = Glm46VImageProcessor.fromPretrained(configDir('no_resize', { ...config, do_resize: false }));
    const i = names.indexOf('../images/rgb16.png'); // 84x28, inside the pixel budget: resize is the identity
    const resized = Glm46VImageProcessor.fromPretrained(ref.modelDir).preprocess([imgs[i]!]);
    expect(proc.preprocess([imgs[i]!]).pixelValues).to.deep.equal(resized.pixelValues);
    expect(() => proc.preprocess([imgs[names.indexOf('../images/photo.jpg')]!])).to.throw(ProcessorError, 'not a multiple of 28');
  });

  it('fromPretrained reads the real GLM-4.1V-9B-Thinking preprocessor_config.json', () => {
    const proc = Glm4vImageProcessor.fromPretrained(GLM41V);
    const c = proc.config;
    expect(c.size).to.deep.equal({ shortest_edge: 12544, longest_edge: 9633792 });
    expect([c.patch_size, c.temporal_patch_size, c.merge_size]).to.deep.equal([14, 2, 2]);
    expect(c.image_mean).to.deep.equal([0.48145466, 0.4578275, 0.40821073]);
    expect(c.image_std).to.deep.equal([0.26862954, 0.26130258, 0.27577711]);
    expect(c.image_processor_type).to.equal('Glm4vImageProcessor');
    expect(c.raw.processor_class).to.equal('Glm4vProcessor');
    // keys the file leaves out take the class defaults
    expect([c.do_resize, c.do_rescale, c.do_normalize, c.do_convert_rgb, c.resample]).to.deep.equal([true, true, true, true, 3]);
    expect(c.rescale_factor).to.equal(1 / 255);
  });

  it('an empty config gets the HF class defaults (longest_edge 28*28*15000)', () => {
    const c = Glm46VImageProcessor.fromPretrained(configDir('empty', {})).config;
    expect(c.size).to.deep.equal({ shortest_edge: 12544, longest_edge: 11760000 });
    expect(c.image_mean).to.deep.equal([0.48145466, 0.4578275, 0.40821073]);
  });

  it('config errors name the file and the key', () => {
    const bad: [string, unknown, RegExp][] = [
      ['size', { size: { shortest_edge: 12544 } }, /size: must contain 'shortest_edge' and 'longest_edge'/],
      ['type', { image_processor_type: 'Qwen2VLImageProcessor' }, /image_processor_type: "Qwen2VLImageProcessor" is not a GLM-V image processor/],
      ['resample', { resample: 2 }, /resample: only BICUBIC \(3\)/],
      ['mean', { image_mean: [0.5, 0.5] }, /image_mean: expected 3 numbers/],
      ['patch', { patch_size: 0 }, /patch_size: expected an integer >= 1/],
    ];
    for (const [name, config, msg] of bad) {
      const dir = configDir(`bad_${name}`, config);
      expect(() => Glm4vImageProcessor.fromPretrained(dir), name).to.throw(ConfigError, msg);
      expect(() => Glm4vImageProcessor.fromPretrained(dir), name).to.throw(path.join(dir, 'preprocessor_config.json'));
    }
  });

  it('refuses an empty list and a buffer that is not width*height*3 bytes', () => {
    const proc = Glm4vImageProcessor.fromPretrained(GLM41V);
    expect(() => proc.preprocess([])).to.throw(ProcessorError, 'no images');
    expect(() => proc.preprocess([{ width: 4, height: 4, data: new Uint8Array(47) }])).to.throw(ProcessorError, 'image 0: 4x4 with 47 bytes, expected 48 (RGB)');
  });

  it('preprocesses a 1000x1000 photo (decode included) in well under a second', () => {
    const W = 1000, H = 1000, rgba = Buffer.alloc(W * H * 4);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const o = (y * W + x) * 4;
        rgba[o] = 128 + 100 * Math.sin(x / 40) * Math.cos(y / 60);
        rgba[o + 1] = (x * 255) / W;
        rgba[o + 2] = ((x * 7 + y * 13) % 97) + 100;
        rgba[o + 3] = 255;
      }
    }
    const bytes = jpeg.encode({ data: rgba, width: W, height: H }, 90).data;
    const proc = Glm4vImageProcessor.fromPretrained(GLM41V);
    // CPU time, not wall time: the test machine is shared, and wall time mostly measures the neighbours.
    const t0 = performance.now(), c0 = process.cpuUsage();
    const out = proc.preprocess([decodeImage(bytes, 'photo.jpg')]);
    const cpu = process.cpuUsage(c0), cpuMs = (cpu.user + cpu.system) / 1000;
    console.log(`      1000x1000 JPEG: decode + preprocess ${cpuMs.toFixed(0)} ms CPU (${(performance.now() - t0).toFixed(0)} ms wall) -> ${out.shape.join('x')}`);
    expect(out.imageGridThw).to.deep.equal([[1, 72, 72]]);
    expect(cpuMs).to.be.below(1000);
  });
});

describe('patchify', () => {
  // frame f, channel c, pixel (y, x) holds f*1e6 + c*1e4 + y*100 + x
  const frame = (f: number, H: number, W: number) => {
    const a = new Float32Array(3 * H * W);
    for (let c = 0; c < 3; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) a[(c * H + y) * W + x] = f * 1e6 + c * 1e4 + y * 100 + x;
    return a;
  };
  const opts = { patchSize: 14, temporalPatchSize: 2, mergeSize: 2 };

  it('orders rows by merge window, then row and column inside it; columns by channel, frame, pixel', () => {
    const p = patchify([frame(0, 56, 84), frame(1, 56, 84)], 3, 56, 84, opts);
    expect([p.gridT, p.gridH, p.gridW]).to.deep.equal([1, 4, 6]);
    const at = (row: number, col: number) => p.data[row * 1176 + col];
    // window (0,0) is rows 0..3: patches at (y, x) = (0,0), (0,14), (14,0), (14,14); window (0,1) starts at x = 28
    expect([0, 1, 2, 3, 4, 5].map((r) => at(r, 0))).to.deep.equal([0, 14, 1400, 1414, 28, 42]);
    // the second window row (bh = 1) starts after gridW/2 = 3 windows: row 12 is the patch at (28, 0)
    expect(at(12, 0)).to.equal(2800);
    // column (c, tp, ph, pw) = ((c*2 + tp)*14 + ph)*14 + pw
    expect(at(3, 13)).to.equal(1427); // ph 0, pw 13
    expect(at(3, 14)).to.equal(1514); // ph 1, pw 0
    expect(at(0, 196)).to.equal(1e6); // frame 1
    expect(at(0, 392)).to.equal(1e4); // channel 1, frame 0
    expect(at(0, 1175)).to.equal(1e6 + 2e4 + 1313);
  });

  it('groups frames in pairs for videos (grid_t = frames / 2)', () => {
    const p = patchify([0, 1, 2, 3].map((f) => frame(f, 28, 28)), 3, 28, 28, opts);
    expect([p.gridT, p.gridH, p.gridW]).to.deep.equal([2, 2, 2]);
    expect(p.data[4 * 1176]).to.equal(2e6);
    expect(p.data[4 * 1176 + 196]).to.equal(3e6);
  });

  it('checks the frame count and the size', () => {
    expect(() => patchify([frame(0, 28, 28)], 3, 28, 28, opts)).to.throw(ProcessorError, 'temporal_patch_size 2');
    expect(() => patchify([frame(0, 14, 28), frame(0, 14, 28)], 3, 14, 28, opts)).to.throw(ProcessorError, 'multiple of patch_size * merge_size = 28');
  });
});
