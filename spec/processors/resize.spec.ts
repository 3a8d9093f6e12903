import { expect } from 'chai';
import { bicubicAntialiasWeights, resizeBicubicAntialias } from '../../processors/resize';
import { expectEqualInts } from '../helpers/expect_close';
import { fixturePath, loadReference } from '../helpers/fixtures';

describe('resizeBicubicAntialias', () => {
  // torchvision resize(uint8, BICUBIC, antialias=True) of random noise: up, down (x5), one axis, 3x2 -> 28x28.
  const ref = loadReference(fixturePath('image_processor', 'resize.safetensors'));
  const cases = JSON.parse(ref.metadata.cases!) as [number, number, number, number][];

  cases.forEach(([h, w, oh, ow], i) => {
    it(`equals torchvision exactly: ${h}x${w} -> ${oh}x${ow}`, () => {
      const src = ref.get(`proc:resize_in:${i}`), want = ref.get(`proc:resize_out:${i}`);
      expect(src.shape).to.deep.equal([h, w, 3]);
      const out = resizeBicubicAntialias({ width: w, height: h, data: src.data as Uint8Array }, oh, ow);
      expect([out.height, out.width]).to.deep.equal([oh, ow]);
      expectEqualInts(out.data, want.data, `resize ${h}x${w} -> ${oh}x${ow}`);
    });
  });

  it('returns the pixels unchanged when the size does not change', () => {
    const data = new Uint8Array([1, 2, 3, 4, 5, 6]);
    expect(resizeBicubicAntialias({ width: 2, height: 1, data }, 1, 2).data).to.equal(data);
  });

  it('keeps a constant image constant, up and down', () => {
    const data = new Uint8Array(20 * 30 * 3).fill(77);
    for (const [h, w] of [[7, 90], [56, 28], [3, 3]] as const) {
      const out = resizeBicubicAntialias({ width: 30, height: 20, data }, h, w);
      expect(out.data.every((v) => v === 77), `${h}x${w}`).to.equal(true);
    }
  });
});

describe('bicubicAntialiasWeights', () => {
  it('widens the support by the downscale factor (antialiasing)', () => {
    expect(bicubicAntialiasWeights(10, 20).ksize).to.equal(5); // upscale: support 2 -> 2*2+1 taps
    expect(bicubicAntialiasWeights(100, 20).ksize).to.equal(21); // scale 5: support 10
  });

  it('gives integer weights that sum to one in fixed point (within rounding)', () => {
    for (const [a, b] of [[10, 20], [100, 20], [17, 9], [1000, 224]] as const) {
      const wts = bicubicAntialiasWeights(a, b);
      const one = 2 ** wts.precision;
      // as many fractional bits as int16 holds: the largest weight lands in [2^14, 2^15)
      const maxW = Math.max(...wts.weights);
      expect(maxW).to.be.below(2 ** 15);
      expect(2 * maxW).to.be.at.least(2 ** 15 - 1);
      for (let i = 0; i < b; i++) {
        let s = 0;
        for (let j = 0; j < wts.sizes[i]!; j++) s += wts.weights[i * wts.ksize + j]!;
        expect(Math.abs(s - one), `${a}->${b} output ${i}`).to.be.at.most(wts.ksize);
      }
    }
  });
});
