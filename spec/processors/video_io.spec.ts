// Video input: frame folders (name order, metadata.json fps) and video files through ffprobe/ffmpeg. The file path
// runs against stand-in ffprobe/ffmpeg scripts (spec/helpers/fake_ffmpeg.ts) that print what the real tools print
// (JSON, raw rgb24 frames), so the spec needs no FFmpeg; they also record the arguments they were given.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expect } from 'chai';
import { ProcessorError } from '../../processors/errors';
import { loadFrameFolder, loadVideo, loadVideoFile, videoFromFrames } from '../../processors/video_io';
import { sampleFramesGlm4v } from '../../processors/video_sampling';
import { fakeFfmpeg } from '../helpers/fake_ffmpeg';
import { fixturePath } from '../helpers/fixtures';

const CLIP_B = fixturePath('video', 'clip_b'); // 7 frames 84x56, metadata.json {"fps": 3}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-video-'));
}

describe('processors/video_io: frame folders', () => {
  it('reads the frames in name order with the fps of metadata.json', () => {
    const v = loadFrameFolder(CLIP_B);
    expect(v.metadata).to.deep.equal({ totalFrames: 7, fps: 3, duration: null });
    expect(v.framesIndices).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
    expect([v.frames[0]!.width, v.frames[0]!.height, v.sampled]).to.deep.equal([84, 56, false]);
  });

  it('sorts by name, takes the fps option over metadata.json, and decodes only the sampled frames', () => {
    const dir = tmpDir();
    const names = fs.readdirSync(CLIP_B).filter((n) => n.endsWith('.png')).sort();
    // shuffled names whose order is b, c, a...: the folder order must not matter
    const renamed = ['b.png', 'c.png', 'a.png', 'e.png', 'd.png', 'g.png', 'f.png'];
    names.forEach((n, i) => fs.copyFileSync(path.join(CLIP_B, n), path.join(dir, renamed[i]!)));
    fs.writeFileSync(path.join(dir, 'metadata.json'), JSON.stringify({ fps: 3, duration: 2 }));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a frame');
    const byName = [...renamed].sort().map((n) => renamed.indexOf(n)); // source frame of a.png, b.png, ...
    const all = loadFrameFolder(dir, { fps: 4 });
    expect(all.metadata).to.deep.equal({ totalFrames: 7, fps: 4, duration: 2 });
    const clip = loadFrameFolder(CLIP_B);
    all.frames.forEach((f, i) => expect(Buffer.from(f.data).equals(Buffer.from(clip.frames[byName[i]!]!.data)), `frame ${i}`).to.equal(true));
    // an unpicked frame that cannot be decoded does not matter
    fs.writeFileSync(path.join(dir, 'g.png'), 'broken');
    const picked = loadFrameFolder(dir, { sampleIndices: (m) => sampleFramesGlm4v(m) });
    expect(picked.framesIndices).to.deep.equal([0, 2, 3, 5]); // duration 2 s at fps 3, sampled at 2 fps
    expect(picked.sampled).to.equal(true);
    expect(() => loadFrameFolder(dir)).to.throw(ProcessorError, /g\.png/);
  });

  it('errors: no frames, frames of different sizes (naming the files), bad metadata.json', () => {
    const empty = tmpDir();
    expect(() => loadFrameFolder(empty)).to.throw(ProcessorError, /no frame images.*at least one frame/);
    const mixed = tmpDir();
    fs.copyFileSync(path.join(CLIP_B, 'frame_000.png'), path.join(mixed, 'a.png'));
    fs.copyFileSync(fixturePath('processor', 'shapes_a.png'), path.join(mixed, 'b.png'));
    expect(() => loadFrameFolder(mixed)).to.throw(ProcessorError, /frames differ in size: b\.png is 60x50 but a\.png is 84x56/);
    const bad = tmpDir();
    fs.copyFileSync(path.join(CLIP_B, 'frame_000.png'), path.join(bad, 'a.png'));
    fs.writeFileSync(path.join(bad, 'metadata.json'), '{"fps": "fast"}');
    expect(() => loadFrameFolder(bad)).to.throw(ProcessorError, /metadata\.json: fps must be a positive number, got "fast"/);
    expect(() => loadFrameFolder(path.join(bad, 'nope'))).to.throw(ProcessorError, /cannot read the frame folder/);
    expect(() => videoFromFrames([])).to.throw(ProcessorError, /at least one frame/);
  });
});

/** What ffprobe prints for a stream: the stream entry and one entry per packet. */
function probeJson(stream: Record<string, unknown>, packets: Record<string, unknown>[]): string {
  return JSON.stringify({ packets, streams: [stream] });
}

/** clip_b's 7 frames as ffmpeg prints them (rgb24), the first `n`. */
function rawClipB(n = 7): Buffer {
  return Buffer.concat(loadFrameFolder(CLIP_B).frames.slice(0, n).map((f) => Buffer.from(f.data)));
}

// clip_b muxed in Matroska at 3 fps: millisecond time base, so the frame times are rounded (0, 333, 667, ...)
const MKV_STREAM = { width: 84, height: 56, r_frame_rate: '3/1', time_base: '1/1000' };
const MKV_PACKETS = [0, 333, 667, 1000, 1333, 1667, 2000].map((pts, i) => ({ pts, dts: pts, duration: 333, flags: i ? '__' : 'K_' }));

describe('processors/video_io: video files through ffprobe and ffmpeg', () => {
  const file = path.join(tmpDir(), 'clip.mkv');
  before(() => fs.writeFileSync(file, 'stands in for a video: only the tools read it'));

  it("takes torchcodec's metadata from the packets (count, end - begin, count / duration) and keeps the sampled frames", async () => {
    const tools = fakeFfmpeg({ probeJson: probeJson(MKV_STREAM, MKV_PACKETS), rawFrames: rawClipB() });
    const v = await loadVideoFile(file, { searchPath: tools.bin, sampleIndices: (m) => sampleFramesGlm4v(m) });
    expect(v.metadata).to.deep.equal({ totalFrames: 7, fps: 7 / 2.333, duration: 2.333 });
    expect(v.framesIndices).to.deep.equal([0, 2, 4, 5]); // ceil(i * 3.00043 / 2): not the [0, 2, 3, 5] of exactly 3 fps
    const clip = loadFrameFolder(CLIP_B);
    v.frames.forEach((f, i) => expect(Buffer.from(f.data).equals(Buffer.from(clip.frames[v.framesIndices[i]!]!.data))).to.equal(true));
    const calls = tools.calls();
    expect(calls).to.have.length(2);
    expect(calls[0]).to.match(/^ffprobe -v error -select_streams v:0 -show_entries stream=.*packet=pts,dts,duration,flags -of json .*clip\.mkv$/);
    expect(calls[1]).to.match(/^ffmpeg -v error -nostdin -i .*clip\.mkv -map 0:v:0 -fps_mode passthrough -f rawvideo -pix_fmt rgb24 pipe:1$/);
  });

  it('counts packets as torchcodec does: B-frames out of order, dts for a missing pts, discarded packets skipped', async () => {
    const packets = [
      { pts: 0, dts: -2, duration: 1, flags: 'K_' }, { pts: 3, dts: -1, duration: 1, flags: '__' },
      { dts: 0, duration: 1, flags: '__' }, { pts: 2, dts: 1, duration: 1, flags: '__' },
      { pts: 9, dts: 2, duration: 1, flags: '_D' }, // discarded: neither counted nor stretching the end
      { pts: 5, dts: 3, duration: 1, flags: '__' }, { pts: 4, dts: 4, duration: 1, flags: '__' }, { pts: 6, dts: 5, duration: 1, flags: '__' },
    ];
    const tools = fakeFfmpeg({ probeJson: probeJson({ ...MKV_STREAM, time_base: '1/3' }, packets), rawFrames: rawClipB() });
    const v = await loadVideo(file, { searchPath: tools.bin });
    expect(v.metadata).to.deep.equal({ totalFrames: 7, fps: 7 / (7 / 3), duration: 7 / 3 });
    expect(v.frames).to.have.length(7);
  });

  it('swaps width and height for a 90-degree rotation (ffmpeg rotates the frames) and falls back to r_frame_rate', async () => {
    const packets = [0, 0].map((pts) => ({ pts, duration: 0, flags: 'K_' }));
    const raw = rawClipB(2); // 2 frames of 84x56 bytes = 2 frames of 56x84 after the rotation
    const stream = { ...MKV_STREAM, r_frame_rate: '30000/1001', side_data_list: [{ side_data_type: 'Display Matrix', rotation: -90 }] };
    const v = await loadVideoFile(file, { searchPath: fakeFfmpeg({ probeJson: probeJson(stream, packets), rawFrames: raw }).bin });
    expect([v.frames[0]!.width, v.frames[0]!.height]).to.deep.equal([56, 84]);
    expect(v.metadata).to.deep.equal({ totalFrames: 2, fps: 30000 / 1001, duration: 0 });
  });

  it('names the missing tool', async () => {
    let err: unknown;
    await loadVideoFile(file, { searchPath: tmpDir() }).catch((e) => (err = e));
    expect(err).to.be.instanceOf(ProcessorError);
    expect((err as Error).message).to.match(/clip\.mkv: decoding a video file needs 'ffprobe' \(part of FFmpeg\) on the PATH/);
    const onlyProbe = fakeFfmpeg({ probeJson: probeJson(MKV_STREAM, MKV_PACKETS), rawFrames: rawClipB(), only: 'ffprobe' });
    await loadVideoFile(file, { searchPath: onlyProbe.bin }).catch((e) => (err = e));
    expect((err as Error).message).to.match(/needs 'ffmpeg'/);
  });

  it('says which frame is missing when ffmpeg decodes fewer frames than the packets, and when a file has no frames', async () => {
    let err: unknown;
    await loadVideoFile(file, { searchPath: fakeFfmpeg({ probeJson: probeJson(MKV_STREAM, MKV_PACKETS), rawFrames: rawClipB(5) }).bin })
      .catch((e) => (err = e));
    expect((err as Error).message).to.match(/reports 7 frames but ffmpeg decoded 5; frame 5 is missing/);
    await loadVideoFile(file, { searchPath: fakeFfmpeg({ probeJson: probeJson(MKV_STREAM, []), rawFrames: Buffer.alloc(0) }).bin })
      .catch((e) => (err = e));
    expect((err as Error).message).to.match(/clip\.mkv: the video stream has no frames/);
    await loadVideo(path.join(path.dirname(file), 'none.mp4')).catch((e) => (err = e));
    expect((err as Error).message).to.match(/none\.mp4: no such video file or frame folder/);
  });
});
