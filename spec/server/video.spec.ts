// glm46v serve with video parts (vLLM's {"type": "video_url", "video_url": {"url": ...}}): a folder of frames under
// --allow-files, a data: URL of a video file decoded with ffmpeg (replayed by spec/helpers/fake_ffmpeg.ts from the
// real tools' recorded output for clip_d.mp4), and clear 400s for what is not taken. The answer and the prompt's
// token count equal those of the library path (the video processor, processor.call, generate) on the same video.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { generate } from '../../generation/generate';
import { Glm46VImageProcessor } from '../../processors/image_processor';
import { loadProcessor } from '../../processors/processor';
import { DecodedVideo, loadFrameFolder, loadVideoFile } from '../../processors/video_io';
import { loadVideoProcessor } from '../../processors/video_processor';
import { fakeFfmpeg } from '../helpers/fake_ffmpeg';
import { fixturePath } from '../helpers/fixtures';
import { BUILTIN, Running, startServer } from './helpers';

const VIDEOS = fixturePath('video');
const CLIP_D = path.join(VIDEOS, 'file', 'clip_d.mp4');
const QUESTION = 'What happens in the video?';

async function post(url: string, body: object): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  expect(text).to.not.match(/\n\s+at /);
  return { status: res.status, json: JSON.parse(text) };
}

const ask = (...urls: string[]) => ({
  model: 'glm46v', max_tokens: 8,
  messages: [{ role: 'user', content: [...urls.map((url) => ({ type: 'video_url', video_url: { url } })), { type: 'text', text: QUESTION }] }],
});

/** The library path: the built-in model's processors and greedy generate on the decoded video -> [prompt tokens, answer]. */
async function direct(s: Running, video: DecodedVideo): Promise<[number, string]> {
  const processor = loadProcessor(BUILTIN, Glm46VImageProcessor.fromPretrained(BUILTIN));
  const videos = loadVideoProcessor(BUILTIN).preprocess([video]);
  const prompt = processor.applyChatTemplate([{ role: 'user', content: [{ type: 'video' }, { type: 'text', text: QUESTION }] }], { addGenerationPrompt: true });
  const enc = processor.call({ text: [prompt], videos });
  const pixels = tf.tensor2d(enc.pixelValuesVideos!, enc.pixelValuesVideosShape as [number, number]);
  const [seq] = await generate(s.server.model, { inputIds: enc.inputIds, pixelValuesVideos: pixels, videoGridThw: enc.videoGridThw! }, { maxNewTokens: 8 });
  pixels.dispose();
  const n = enc.inputIds[0]!.length;
  return [n, processor.decode(seq!.slice(n), { skipSpecialTokens: true })];
}

describe('glm46v serve: video parts', () => {
  let s: Running;
  const decoded = loadFrameFolder(path.join(VIDEOS, 'file', 'decoded'));
  const tools = fakeFfmpeg({
    probeJson: fs.readFileSync(path.join(VIDEOS, 'file', 'ffprobe.json'), 'utf8'),
    rawFrames: Buffer.concat(decoded.frames.map((f) => Buffer.from(f.data))),
  });
  before(async () => {
    s = await startServer({ allowFiles: VIDEOS, ffmpegPath: tools.bin });
  });
  after(async () => s.stop());

  it('answers about a folder of frames under --allow-files as the library does', async () => {
    const r = await post(s.url, ask('clip_a'));
    expect(r.status).to.equal(200);
    const vp = loadVideoProcessor(BUILTIN);
    const [promptTokens, answer] = await direct(s, loadFrameFolder(path.join(VIDEOS, 'clip_a'), { sampleIndices: (m) => vp.sampleFrames(m) }));
    expect(r.json.usage.prompt_tokens).to.equal(promptTokens);
    expect(r.json.choices[0].message.content).to.equal(answer);
  });

  it('decodes a data: URL of a video file with ffmpeg, sampling frames as the CLI does', async () => {
    const r = await post(s.url, ask(`data:video/mp4;base64,${fs.readFileSync(CLIP_D).toString('base64')}`));
    expect(r.status, JSON.stringify(r.json)).to.equal(200);
    expect(tools.calls().map((c) => c.split(' ')[0])).to.deep.equal(['ffprobe', 'ffmpeg']);
    const vp = loadVideoProcessor(BUILTIN);
    const [promptTokens, answer] = await direct(s, await loadVideoFile(CLIP_D, { searchPath: tools.bin, sampleIndices: (m) => vp.sampleFrames(m) }));
    expect(r.json.usage.prompt_tokens).to.equal(promptTokens);
    expect(r.json.choices[0].message.content).to.equal(answer);
    expect(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('glm46v-video-') && fs.existsSync(path.join(os.tmpdir(), f, 'video')))).to.deep.equal([]);
  });

  it('refuses what it cannot take with a 400 that says what is supported', async () => {
    const none = await startServer({ ffmpegPath: fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-noffmpeg-')) });
    try {
      const cases: [Running, object, RegExp][] = [
        [none, ask('data:video/mp4;base64,AAAA'), /needs 'ffprobe' \(part of FFmpeg\) on the PATH.*folder of frame images/],
        [none, ask('clip_a'), /local video files are not allowed \(start the server with --allow-files DIR\)/],
        [s, ask('../processor'), /outside the allowed folder/],
        [s, ask('clip_a', 'clip_b'), /2 videos in one request, the limit is 1/],
        [s, ask('data:text/plain;base64,AAAA'), /video data URLs must be data:video\/<format>;base64/],
        [s, ask('file'), /<allowed>\/file: no frame images/],
      ];
      for (const [server, body, message] of cases) {
        const r = await post(server.url, body);
        expect(r.status, String(message)).to.equal(400);
        expect(r.json.error.message).to.match(message);
        expect(r.json.error.message).to.not.include(os.tmpdir() + path.sep + 'glm46v-video-');
      }
    } finally {
      await none.stop();
    }
    expect((await post(s.url, ask('clip_b'))).status).to.equal(200);
  });
});
