// The fuzzer's child process: runs the inputs it is sent one at a time and reports each outcome with its peak RSS,
// so that the parent can kill it on a hang or an allocation past the bound and go on with a fresh one.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Format, makeInput, runInput } from './targets';

export type WorkerRequest =
  | { id: number; seed: number; index: number; formats: Format[] }
  | { id: number; format: Format; seedFile: string; bytes: Uint8Array };

export interface WorkerReply {
  id: number;
  outcome: string;
  detail: string;
  ms: number;
  /** process.resourceUsage().maxRSS after the input, in KiB */
  maxRssKb: number;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-fuzz-'));
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
process.on('disconnect', () => process.exit(0));

process.on('message', (req: WorkerRequest) => {
  const input = 'index' in req ? makeInput(req.seed, req.index, req.formats) : { ...req, bytes: new Uint8Array(req.bytes) };
  const r = runInput(input.format, input.bytes, dir, input.seedFile);
  const reply: WorkerReply = { id: req.id, ...r, maxRssKb: process.resourceUsage().maxRSS };
  process.send!(reply);
});
process.send!({ ready: true });
