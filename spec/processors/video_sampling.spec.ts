// Frame sampling of Glm46VVideoProcessor / Glm4vVideoProcessor against transformers' sample_frames on metadata
// cases (spec/fixtures/video/sampling.json from scripts/parity/cases_video.py): indices, timestamps and the frame
// labels of the two processors, exactly.
import * as fs from 'fs';
import { expect } from 'chai';
import { glm46vFrameLabel, glm4vFrameLabel } from '../../processors/processor';
import { ProcessorError } from '../../processors/errors';
import {
  dedupeEven, frameTimestamps, linspace, linspaceInt, sampleFramesGlm46v, sampleFramesGlm4v, VideoMetadata,
} from '../../processors/video_sampling';
import { fixturePath } from '../helpers/fixtures';

interface Policy { indices: number[]; labels: string[]; timestamps?: number[] }
interface Case {
  name: string;
  total_frames: number;
  fps: number;
  duration: number | null;
  glm46v: Policy;
  glm4v: Record<string, Policy>;
}
const fixture = JSON.parse(fs.readFileSync(fixturePath('video', 'sampling.json'), 'utf8')) as {
  cases: Case[];
  linspace: { start: number; stop: number; num: number; expected: number[]; float: number[] }[];
};
const metaOf = (c: Case): VideoMetadata => ({ totalFrames: c.total_frames, fps: c.fps, duration: c.duration });

/** Checks one policy's output against the reference: indices, timestamps (exact doubles) and labels. */
function expectPolicy(label: string, indices: number[], fps: number, ref: Policy, frameLabel: (t: number) => string): void {
  expect(indices, `${label} indices`).to.deep.equal(ref.indices);
  const ts = frameTimestamps(indices, fps);
  if (ref.timestamps) expect(ts, `${label} timestamps`).to.deep.equal(ref.timestamps);
  expect(ts.filter((_, i) => i % 2 === 0).map(frameLabel), `${label} labels`).to.deep.equal(ref.labels);
}

describe('processors/video_sampling: numpy linspace', () => {
  for (const l of fixture.linspace) {
    it(`linspace(${l.start}, ${l.stop}, ${l.num}) as float64 and as dtype=int`, () => {
      expect(linspace(l.start, l.stop, l.num)).to.deep.equal(l.float);
      expect(linspaceInt(l.start, l.stop, l.num)).to.deep.equal(l.expected);
    });
  }
});

describe('processors/video_sampling: GLM-4.6V dynamic fps', () => {
  it('covers the required metadata cases', () => {
    const names = fixture.cases.map((c) => c.name);
    for (const want of ['short clip', 'exactly 30 s', '5 min at', 'over 40 min', 'fewer frames than wanted']) {
      expect(names.some((n) => n.includes(want)), want).to.equal(true);
    }
  });

  for (const c of fixture.cases) {
    it(`${c.name}: ${c.glm46v.indices.length} frames as transformers samples them`, () => {
      expectPolicy(c.name, sampleFramesGlm46v(metaOf(c)), c.fps, c.glm46v, glm46vFrameLabel);
    });
  }

  it("labels timestamps like Python's .1f where JavaScript's toFixed rounds differently (0.25 -> 0.2, 1.25 -> 1.2)", () => {
    const differing: string[] = [];
    for (const c of fixture.cases) {
      const ts = frameTimestamps(c.glm46v.indices, c.fps).filter((_, i) => i % 2 === 0);
      ts.forEach((t, i) => {
        if (`${t.toFixed(1)} seconds` !== c.glm46v.labels[i]) differing.push(`${t} -> ${c.glm46v.labels[i]}`);
      });
    }
    expect(differing).to.include.members(['0.25 -> 0.2 seconds', '1.25 -> 1.2 seconds', '2.25 -> 2.2 seconds', '3.25 -> 3.2 seconds']);
  });
});

describe('processors/video_sampling: GLM-4.1V fixed fps', () => {
  for (const c of fixture.cases) {
    for (const [fps, ref] of Object.entries(c.glm4v)) {
      it(`${c.name}, fps ${fps}: ${ref.indices.length} frames`, () => {
        expectPolicy(`${c.name} fps ${fps}`, sampleFramesGlm4v(metaOf(c), { fps: Number(fps) }), c.fps, ref, glm4vFrameLabel);
      });
    }
  }

  it('uses fps 2 and max_duration 300 by default', () => {
    const c = fixture.cases.find((x) => x.name.startsWith('5 min'))!;
    expect(sampleFramesGlm4v(metaOf(c))).to.deep.equal(c.glm4v['2']!.indices);
  });
});

describe('processors/video_sampling: errors and helpers', () => {
  it('refuses to sample without an fps, naming the model and the way out', () => {
    const meta = { totalFrames: 10, fps: null, duration: null };
    expect(() => sampleFramesGlm46v(meta)).to.throw(ProcessorError, /no video metadata.*Glm46V.*do_sample_frames/);
    expect(() => sampleFramesGlm4v(meta)).to.throw(ProcessorError, /no video metadata.*GLM4V/);
  });

  it('refuses a video with no frames', () => {
    expect(() => sampleFramesGlm46v({ totalFrames: 0, fps: 30, duration: null })).to.throw(ProcessorError, /at least one frame.*totalFrames=0/);
    expect(() => sampleFramesGlm4v({ totalFrames: 0, fps: 30, duration: 1 })).to.throw(ProcessorError, /at least one frame/);
  });

  it('dedupeEven keeps the first occurrence and pads an odd count with the last index', () => {
    expect(dedupeEven([0, 2, 3, 5, 6, 6])).to.deep.equal([0, 2, 3, 5, 6, 6]);
    expect(dedupeEven([0, 0, 1, 1, 2])).to.deep.equal([0, 1, 2, 2]);
    expect(dedupeEven([4, 1, 4, 1])).to.deep.equal([4, 1]);
  });
});
