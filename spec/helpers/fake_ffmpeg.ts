// Stand-in `ffprobe` / `ffmpeg` executables for the video-file specs, so they run without FFmpeg: ffprobe prints
// a given JSON text (what the real tool printed), ffmpeg prints given raw rgb24 frames; both log their arguments.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export interface FakeTools {
  /** the folder to use as the search PATH */
  bin: string;
  /** one line per call: the tool's name and its arguments */
  calls(): string[];
}

export function fakeFfmpeg(opts: { probeJson: string; rawFrames: Buffer; only?: 'ffprobe' }): FakeTools {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-ffmpeg-'));
  const log = path.join(bin, 'calls.log');
  const script = (body: string) => `#!/bin/sh\necho "$(basename "$0") $*" >> '${log}'\n${body}\n`;
  fs.writeFileSync(path.join(bin, 'probe.json'), opts.probeJson);
  fs.writeFileSync(path.join(bin, 'ffprobe'), script(`cat '${bin}/probe.json'`), { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'frames.rgb'), opts.rawFrames);
  if (opts.only !== 'ffprobe') fs.writeFileSync(path.join(bin, 'ffmpeg'), script(`cat '${bin}/frames.rgb'`), { mode: 0o755 });
  return { bin, calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []) };
}
