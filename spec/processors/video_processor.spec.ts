// Glm4vVideoProcessor / Glm46VVideoProcessor (and the processor's video prompts) against transformers' AutoProcessor
// on the committed clips (spec/fixtures/video/*.safetensors from scripts/parity/cases_video.py): sampled frames,
// pixel_values_videos within one 8-bit step, video_grid_thw and input_ids exactly.
import * as fs from 'fs';
import * as path from 'path';
import { expect } from 'chai';
import { ConfigError } from '../../lib/config';
import { HostTensor } from '../../lib/safetensors';
import type { ChatMessage } from '../../processors/chat_template';
import { ProcessorError } from '../../processors/errors';
import { Glm4vImageProcessor } from '../../processors/image_processor';
import { loadImage, RgbImage } from '../../processors/image_io';
import { loadProcessor } from '../../processors/processor';
import { loadFrameFolder, loadVideoFile, videoFromFrames } from '../../processors/video_io';
import {
  Glm46VVideoProcessor, Glm4vVideoProcessor, loadVideoProcessor, parseVideoProcessorConfig, VideoProcessorOutput,
} from '../../processors/video_processor';
import { expectClose } from '../helpers/expect_close';
import { fakeFfmpeg } from '../helpers/fake_ffmpeg';
import { fixturePath, loadReference, Reference } from '../helpers/fixtures';

const ONE_STEP = 0.016; // one 8-bit level after normalization is 1/255/std >= 0.0142

function rows(t: HostTensor): number[][] {
  const [B, L] = t.shape as [number, number];
  return Array.from({ length: B }, (_, b) => Array.from(t.data.subarray(b * L, (b + 1) * L)));
}

interface Case { ref: Reference; videos: VideoProcessorOutput; ids: number[][] }

/** Loads the case's clips as the reference did (folders, fps), runs our video processor and processor. */
function runCase(name: string, prefix: 'proc:' | 'in:'): Case {
  const ref = loadReference(fixturePath('video', `${name}.safetensors`));
  const notes = JSON.parse(ref.metadata.videos!) as { folder: string; fps: number }[];
  const vp = loadVideoProcessor(ref.modelDir);
  const clips = notes.map((v) => loadFrameFolder(fixturePath('video', v.folder), { fps: v.fps }));
  const videos = vp.preprocess(clips);
  const proc = loadProcessor<RgbImage>(ref.modelDir, Glm4vImageProcessor.fromPretrained(ref.modelDir));
  expect(proc.constructor.name).to.equal(ref.metadata.processor_class);
  const chats = JSON.parse(ref.metadata.messages!) as ChatMessage[][];
  const text = chats.map((c) => proc.applyChatTemplate(c, { addGenerationPrompt: true }));
  expect(text).to.deep.equal(JSON.parse(ref.metadata.text!));
  const images = ref.metadata.images ? (JSON.parse(ref.metadata.images) as string[]).map((f) => loadImage(path.resolve(path.dirname(ref.file), f))) : undefined;
  const out = proc.call({ text, videos, ...(images ? { images } : {}) });
  expect(out.inputIds, `${name} input_ids`).to.deep.equal(rows(ref.get(`${prefix}input_ids`)));
  expect(out.attentionMask, `${name} attention_mask`).to.deep.equal(rows(ref.get(`${prefix}attention_mask`)));
  if (prefix === 'proc:') expect(out.mmTokenTypeIds).to.deep.equal(rows(ref.get('proc:mm_token_type_ids')));
  if (images) expectClose(out.pixelValues!, ref.get('in:pixel_values').data, { atol: ONE_STEP, label: `${name} pixel_values` });
  return { ref, videos, ids: out.inputIds };
}

function expectVideos(name: string, c: Case, prefix: 'proc:' | 'in:'): void {
  const { ref, videos } = c;
  expect(videos.videos.map((v) => v.framesIndices), `${name} frames_indices`).to.deep.equal(JSON.parse(ref.metadata.frames_indices!));
  expect(videos.videos.map((v) => v.timestamps), `${name} timestamps`).to.deep.equal(JSON.parse(ref.metadata.timestamps!));
  expect(videos.videos.map((v) => v.videoGridThw), `${name} video_grid_thw`).to.deep.equal(rows(ref.get(`${prefix}video_grid_thw`)));
  const pv = ref.get(`${prefix}pixel_values_videos`);
  expect(videos.shape).to.deep.equal(pv.shape);
  const r = expectClose(videos.pixelValuesVideos, pv.data, { atol: ONE_STEP, label: `${name} pixel_values_videos` });
  console.log(`      ${name}: pixel_values_videos ${JSON.stringify(pv.shape)} max diff ${r.maxAbs.toExponential(2)}`);
}

describe('processors/video_processor: parity with transformers', () => {
  it('proc_clip_a: Glm4vVideoProcessor samples 8 frames at fps 2, resizes 60x90 -> 56x84; ids exact', () => {
    expectVideos('proc_clip_a', runCase('proc_clip_a', 'proc:'), 'proc:');
  });

  it('model_video: 13 frames -> 14, shrunk to 28x56 by the pixel budget', () => {
    const c = runCase('model_video', 'in:');
    expectVideos('model_video', c, 'in:');
    expect(c.videos.videos[0]!.videoGridThw).to.deep.equal([7, 2, 4]);
  });

  it('model_video_batch: two videos of different lengths and sizes in a left-padded batch', () => {
    expectVideos('model_video_batch', runCase('model_video_batch', 'in:'), 'in:');
  });

  it('model_mixed: an image and a video in one prompt (image processor and video processor side by side)', () => {
    expectVideos('model_mixed', runCase('model_mixed', 'in:'), 'in:');
  });

  it("proc_clip_b_glm46v: Glm46VProcessor labels frames with Python's .1f (0.25 -> '0.2 seconds')", () => {
    const c = runCase('proc_clip_b_glm46v', 'proc:');
    expect(c.videos.videos[0]!.timestamps).to.deep.equal([0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.75]);
    expect(rows(c.ref.get('proc:video_grid_thw'))).to.deep.equal(c.videos.videos.map((v) => v.videoGridThw));
    const proc = loadProcessor(c.ref.modelDir);
    const text = proc.tokenizer.decode(c.ids[0]!);
    expect(text).to.include('<|end_of_image|>0.2 seconds').and.include('<|end_of_image|>0.8 seconds');
  });
});

describe('processors/video_processor: a video file as transformers decodes it (torchcodec)', () => {
  // spec/fixtures/video/file/ from scripts/parity/video_file_reference.py: an H.264 file, what the real ffprobe
  // printed for it, torchcodec's decoded frames (equal to what the real ffmpeg printed), the reference processor's
  // output on the file path. The tools are replayed here, so the spec needs no FFmpeg.
  const dir = fixturePath('video', 'file');
  const ref = loadReference(path.join(dir, 'reference.safetensors'));

  it("Glm46VProcessor on clip_d.mp4: torchcodec's metadata, the sampled frames, pixel_values_videos and ids", async () => {
    const decoded = loadFrameFolder(path.join(dir, 'decoded'));
    const tools = fakeFfmpeg({
      probeJson: fs.readFileSync(path.join(dir, 'ffprobe.json'), 'utf8'),
      rawFrames: Buffer.concat(decoded.frames.map((f) => Buffer.from(f.data))),
    });
    const vp = loadVideoProcessor(ref.modelDir);
    const file = path.join(dir, 'clip_d.mp4');
    const video = await loadVideoFile(file, { searchPath: tools.bin, sampleIndices: (m) => vp.sampleFrames(m) });
    // the same commands the recording was made with
    const [probeCall, decodeCall] = tools.calls();
    expect(probeCall).to.equal(['ffprobe', ...JSON.parse(ref.metadata.probe_args!), file].join(' '));
    expect(decodeCall).to.equal(['ffmpeg', ...(JSON.parse(ref.metadata.decode_args!) as string[]).map((a) => a.replace('{file}', file))].join(' '));
    const tc = JSON.parse(ref.metadata.torchcodec!) as { total: number; fps: number; duration: number };
    expect(video.metadata).to.deep.equal({ totalFrames: tc.total, fps: tc.fps, duration: tc.duration });
    expect(video.framesIndices).to.deep.equal(JSON.parse(ref.metadata.frames_indices!));
    const out = vp.preprocess([video]);
    expect(out.videos[0]!.videoGridThw).to.deep.equal(rows(ref.get('proc:video_grid_thw'))[0]);
    expectClose(out.pixelValuesVideos, ref.get('proc:pixel_values_videos').data, { atol: ONE_STEP, label: 'clip_d pixel_values_videos' });
    const proc = loadProcessor(ref.modelDir);
    const chats = JSON.parse(ref.metadata.messages!) as ChatMessage[][];
    const text = chats.map((c) => proc.applyChatTemplate(c, { addGenerationPrompt: true }));
    expect(proc.call({ text, videos: out }).inputIds).to.deep.equal(rows(ref.get('proc:input_ids')));
  });
});

describe('processors/video_processor: config, sampling switch and errors', () => {
  const dir = fixturePath('models', 'tiny_a');

  it('applies the Glm4vVideoProcessor defaults and picks the class from video_processor_type', () => {
    const cfg = parseVideoProcessorConfig({});
    expect(cfg.size).to.deep.equal({ shortest_edge: 12544, longest_edge: 47040000 });
    expect([cfg.fps, cfg.max_duration, cfg.do_sample_frames, cfg.temporal_patch_size]).to.deep.equal([2, 300, true, 2]);
    expect(loadVideoProcessor(dir)).to.be.instanceOf(Glm4vVideoProcessor).and.not.instanceOf(Glm46VVideoProcessor);
    expect(loadVideoProcessor(fixturePath('models', 'tiny_b'))).to.be.instanceOf(Glm46VVideoProcessor);
    expect(() => parseVideoProcessorConfig({ video_processor_type: 'Qwen2VLVideoProcessor' }, 'x.json: ')).to.throw(ConfigError, /x.json: video_processor_type/);
    expect(() => parseVideoProcessorConfig({ size: { shortest_edge: 10 } })).to.throw(ConfigError, /longest_edge/);
  });

  it('without sampling keeps every frame and pads an odd count with the last frame', () => {
    const vp = Glm4vVideoProcessor.fromPretrained(dir);
    const clip = loadFrameFolder(fixturePath('video', 'clip_b'));
    const out = vp.preprocess([clip], { doSampleFrames: false });
    expect(out.videos[0]!.videoGridThw).to.deep.equal([4, 4, 6]);
    expect(out.videos[0]!.framesIndices).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    // the padded frame pair repeats frame 6: both temporal halves of each of its rows are equal
    const cols = out.shape[1], half = 14 * 14, rowsPerT = 4 * 6;
    const row = out.pixelValuesVideos.subarray(3 * rowsPerT * cols, 3 * rowsPerT * cols + cols);
    expect(Array.from(row.subarray(0, half))).to.deep.equal(Array.from(row.subarray(half, 2 * half)));
  });

  it('frames sampled while loading are not sampled again', () => {
    const vp = Glm4vVideoProcessor.fromPretrained(dir);
    const clip = loadFrameFolder(fixturePath('video', 'clip_c'), { sampleIndices: (m) => vp.sampleFrames(m) });
    expect(clip.sampled).to.equal(true);
    const out = vp.preprocess([clip]);
    expect(out.videos[0]!.framesIndices).to.deep.equal(clip.framesIndices);
  });

  it('asks for the fps when sampling is on and the video has none', () => {
    const vp = Glm46VVideoProcessor.fromPretrained(fixturePath('models', 'tiny_b'));
    const clip = loadFrameFolder(fixturePath('video', 'clip_b'));
    const noFps = { ...clip, metadata: { ...clip.metadata, fps: null } };
    expect(() => vp.preprocess([noFps])).to.throw(ProcessorError, /no video metadata.*Glm46V/);
    // without sampling it goes through, and the processor assumes 24 fps for the labels, as transformers does
    expect(vp.preprocess([noFps], { doSampleFrames: false }).videos[0]!.timestamps).to.equal(null);
  });

  it('rejects a video with no frames and frames of different sizes', () => {
    const vp = Glm4vVideoProcessor.fromPretrained(dir);
    const a: RgbImage = { width: 56, height: 56, data: new Uint8Array(56 * 56 * 3) };
    const b: RgbImage = { width: 84, height: 56, data: new Uint8Array(84 * 56 * 3) };
    expect(() => videoFromFrames([], { fps: 2 })).to.throw(ProcessorError, /at least one frame/);
    expect(() => videoFromFrames([a, b], { fps: 2 }, 'clip.mp4')).to.throw(ProcessorError, /clip.mp4: frames differ in size: frame 1 is 84x56 but frame 0 is 56x56/);
    const forged = { ...videoFromFrames([a, a], { fps: 2 }), frames: [a, b] };
    expect(() => vp.preprocess([forged], { doSampleFrames: false })).to.throw(ProcessorError, /frames differ in size: frame 1/);
    expect(() => vp.preprocess([])).to.throw(ProcessorError, /no videos/);
    // one frame cannot fill a temporal patch of 2 (transformers' smart_resize raises the same)
    expect(() => vp.preprocess([videoFromFrames([a])], { doSampleFrames: false })).to.throw(ProcessorError, /t:1 must be larger than temporal_factor:2/);
  });
});
