import { expect } from 'chai';
import * as fs from 'fs';
import { mmTokenTypeIds } from '../../../models/glm4v/placeholders';
import { cuSeqlens, flattenGridThw, getRopeIndex, RopeIndexConfig, visionPositionIds } from '../../../models/glm4v/rope_index';
import type { HostTensor } from '../../../lib/safetensors';
import { expectEqualInts } from '../../helpers/expect_close';
import { fixturePath, loadReference } from '../../helpers/fixtures';

// the tiny tokenizer's ids (scripts/parity/tiny_models.py): <|image|> 370, <|begin_of_video|> 364, <|end_of_video|> 365
const cfg: RopeIndexConfig = { image_token_id: 370, video_start_token_id: 364, video_end_token_id: 365, spatialMergeSize: 2 };
const [I, VS, VE] = [370, 364, 365];

function rows(t: HostTensor): number[][] {
  const [r, c] = t.shape as [number, number];
  return Array.from({ length: r }, (_, i) => Array.from(t.data.slice(i * c, (i + 1) * c)));
}

describe('getRopeIndex (pure)', () => {
  it('text only is arange on all three axes; left padding gets 0 and the delta is 0', () => {
    const { positionIds, ropeDeltas } = getRopeIndex([[5, 6, 7, 8], [1, 1, 9, 9]], [[1, 1, 1, 1], [0, 0, 1, 1]], [], [], cfg);
    for (const axis of positionIds) expect(axis).to.deep.equal([[0, 1, 2, 3], [0, 0, 0, 1]]);
    expect(ropeDeltas).to.deep.equal([0, 0]);
    expect(getRopeIndex([[5, 6, 7]], undefined, [], [], cfg).positionIds).to.deep.equal([[[0, 1, 2]], [[0, 1, 2]], [[0, 1, 2]]]);
  });

  it('one image [1, 4, 6] between text: (st, st + row, st + col), next text at st + max(4, 6) / 2', () => {
    const { positionIds, ropeDeltas } = getRopeIndex([[1, 2, I, I, I, I, I, I, 3]], undefined, [[1, 4, 6]], [], cfg);
    expect(positionIds).to.deep.equal([
      [[0, 1, 2, 2, 2, 2, 2, 2, 5]],
      [[0, 1, 2, 2, 2, 3, 3, 3, 5]],
      [[0, 1, 2, 3, 4, 2, 3, 4, 5]],
    ]);
    expect(ropeDeltas).to.deep.equal([5 + 1 - 9]);
  });

  it('video frames: each frame uses its own [1, h, w] grid and starts after the timestamp text', () => {
    // <video> frame(1x2) "ts" frame(1x2) </video>, video grid [2, 2, 4]
    const { positionIds, ropeDeltas } = getRopeIndex([[VS, I, I, 50, I, I, VE]], undefined, [], [[2, 2, 4]], cfg);
    expect(positionIds).to.deep.equal([
      [[0, 1, 1, 3, 4, 4, 6]],
      [[0, 1, 1, 3, 4, 4, 6]],
      [[0, 1, 2, 3, 4, 5, 6]],
    ]);
    expect(ropeDeltas).to.deep.equal([0]);
  });

  it('an image grid with t > 1 gets temporal ids st + arange(t), and the next run still starts at st + max(h, w) / 2', () => {
    const { positionIds } = getRopeIndex([[I, I, 9]], undefined, [[2, 2, 2]], [], cfg);
    expect(positionIds).to.deep.equal([[[0, 1, 1]], [[0, 0, 1]], [[0, 0, 1]]]);
  });

  it('consumes grids in order across the batch', () => {
    const { positionIds } = getRopeIndex([[I, I, 1], [I, 1, 1]], undefined, [[1, 2, 4], [1, 2, 2]], [], cfg);
    expect(positionIds[2]).to.deep.equal([[0, 1, 2], [0, 1, 2]]);
    expect(positionIds[0]).to.deep.equal([[0, 0, 2], [0, 1, 2]]);
  });

  it('rejects grids that do not fit the image runs, naming the row and the grid', () => {
    expect(() => getRopeIndex([[I, I, 1]], undefined, [], [], cfg)).to.throw(/row 0 has more image runs than the 0 image grids/);
    expect(() => getRopeIndex([[I, I, 1]], undefined, [[1, 4, 4]], [], cfg)).to.throw(/run of 2 tokens at 0 does not fit grid \[1,4,4\]/);
    expect(() => getRopeIndex([[I, I, 1]], undefined, [[1, 2, 4], [1, 2, 2]], [], cfg)).to.throw(/2 image grids given but the input ids hold 1/);
    expect(() => getRopeIndex([[1, 2]], [[0, 0]], [], [], cfg)).to.throw(/row 0 has no unmasked token/);
  });

  it('mmTokenTypeIds: image tokens between video start and end are video (2), others image (1)', () => {
    expect(Array.from(mmTokenTypeIds([1, VS, I, VE, I, 2], cfg))).to.deep.equal([0, 0, 2, 0, 1, 0]);
  });
});

describe('visionPositionIds / cuSeqlens', () => {
  it('orders patches by merge window, then row-major inside the window, repeated per temporal slice', () => {
    const { hpos, wpos } = visionPositionIds([[2, 2, 4]], 2);
    expect(Array.from(hpos)).to.deep.equal([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
    expect(Array.from(wpos)).to.deep.equal([0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3]);
    expect(() => visionPositionIds([[1, 3, 4]], 2)).to.throw(/\[1,3,4\] is not divisible by the merge size 2/);
  });

  it('gives one span per image and temporal slice', () => {
    expect(cuSeqlens([[1, 2, 4], [2, 4, 4]])).to.deep.equal([0, 8, 24, 40]);
    expect(flattenGridThw([[2, 4, 6], [1, 2, 2]])).to.deep.equal([[1, 4, 6], [1, 4, 6], [1, 2, 2]]);
  });
});

describe('getRopeIndex parity with Glm4vModel.get_rope_index (transformers 5.24)', () => {
  const dir = fixturePath('rope');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();

  it('has the expected cases', () => {
    expect(files).to.include.members(['text_only.safetensors', 'one_image.safetensors', 'two_images.safetensors',
      'video.safetensors', 'left_padded_batch.safetensors', 'video_batch.safetensors']);
  });

  for (const file of files) {
    it(`equals the reference exactly on every token, padding included: ${file}`, () => {
      const ref = loadReference(`${dir}/${file}`);
      const ids = rows(ref.get('in:input_ids'));
      const mask = rows(ref.get('in:attention_mask'));
      ids.forEach((row, b) => expectEqualInts(mmTokenTypeIds(row, cfg), rows(ref.get('in:mm_token_type_ids'))[b]!, `${file} mm_token_type_ids row ${b}`));
      const { positionIds, ropeDeltas } = getRopeIndex(ids, mask, rows(ref.get('in:image_grid_thw')), rows(ref.get('in:video_grid_thw')), cfg);
      expectEqualInts(positionIds.flat(2), ref.get('rope:position_ids'), `${file} position_ids`);
      expectEqualInts(ropeDeltas, ref.get('rope:deltas'), `${file} deltas`);
    });
  }
});
