import { expect } from 'chai';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { command, fmtTime } from '../../cli/finetune';
import { CheckpointReader } from '../../lib/checkpoint';
import { loadModel } from '../../models/glm4v/auto';
import { fixturePath } from '../helpers/fixtures';

const TINY_A = fixturePath('models', 'tiny_a');
const DATA = fixturePath('train', 'data');

/** Runs `glm46v finetune` in this process; returns what it printed. */
async function finetune(argv: string[]): Promise<{ stdout: string; stderr: string }> {
  const out: string[] = [], err: string[] = [];
  const [w1, w2] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((s: string) => out.push(String(s)) > 0) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => err.push(String(s)) > 0) as typeof process.stderr.write;
  try {
    await command.run(argv);
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
  return { stdout: out.join(''), stderr: err.join('') };
}

const base = (out: string) => ['--model', TINY_A, '--data', path.join(DATA, 'train.jsonl'), '--out', out];
const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'finetune-'));

describe('glm46v finetune', () => {
  it('trains, reports progress on stderr and ends with the saved Hugging Face folder', async () => {
    const out = tmpDir();
    const { stdout, stderr } = await finetune([...base(out), '--eval', path.join(DATA, 'eval.jsonl'), '--steps', '4', '--batch-size', '2',
      '--grad-accum', '2', '--lr', '3e-3', '--weight-decay', '0.1', '--warmup', '1', '--clip', '1', '--seed', '7',
      '--freeze-vision', '--max-length', '40', '--save-dtype', 'BF16', '--shard-size', '300000']);
    const last = stdout.trim().split('\n').pop()!;
    expect(last).to.match(/^finetune: steps=4 final_loss=\d+\.\d{6} saved=(.+)$/);
    expect(last.split('saved=')[1]).to.equal(path.join(out, 'final'));
    expect(stderr).to.include('skipped 1 example(s) longer than 40 tokens (lines 4)');
    expect(stderr).to.include('5 training examples, 2 held out');
    expect(stderr).to.match(/finetune: step 4\/4 {2}loss \d+\.\d{4} {2}lr \S+ {2}grad_norm \d+\.\d{3} {2}tok\/s \d+/);
    expect(stderr).to.match(/eta 0:00 {2}eval_loss \d/);
    const reader = new CheckpointReader(path.join(out, 'final'));
    expect(reader.info('lm_head.weight').dtype).to.equal('BF16');
    reader.close();
    expect(fs.existsSync(path.join(out, 'final', 'model.safetensors.index.json'))).to.equal(true);
    expect(fs.existsSync(path.join(out, 'final', 'tokenizer.json'))).to.equal(true);
    loadModel(path.join(out, 'final')).dispose();
  });

  it('--stop-after then --resume gives the weights of an uninterrupted LoRA run', async () => {
    const lora = ['--steps', '4', '--lr', '1e-2', '--lora-rank', '2', '--lora-alpha', '4', '--lora-targets', 'q_proj,v_proj,gate_up_proj', '--seed', '3'];
    const [whole, parts] = [tmpDir(), tmpDir()];
    await finetune([...base(whole), ...lora]);
    const stopped = await finetune([...base(parts), ...lora, '--stop-after', '2']);
    expect(stopped.stdout).to.match(/finetune: stopped at steps=2 loss=\d+\.\d+; continue with --resume/);
    const resumed = await finetune([...base(parts), ...lora, '--resume']);
    expect(resumed.stderr).to.not.include('step 2/4');
    expect(resumed.stderr).to.include('step 3/4');
    const [a, b] = [path.join(whole, 'final', 'model.safetensors'), path.join(parts, 'final', 'model.safetensors')];
    expect(fs.readFileSync(a).equals(fs.readFileSync(b))).to.equal(true);
  });

  it('--first-data: the first --first-steps steps train on that file, then --data, under one schedule', async () => {
    const out = tmpDir();
    const { stderr } = await finetune([...base(out), '--first-data', path.join(DATA, 'eval.jsonl'), '--first-steps', '2', '--steps', '4', '--lr', '1e-3']);
    expect(stderr).to.include('6 training examples, 2 for the first 2 steps');
    const lrs = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).lr as number);
    expect(lrs[2]).to.be.closeTo(1e-3 * 0.5 * (1 + Math.cos(Math.PI * 2 / 4)), 1e-12); // no fresh warmup at the switch
  });

  it('shows the time left as m:ss, rounded before it is split', () => {
    expect([fmtTime(2699.6), fmtTime(59.4), fmtTime(0), fmtTime(61), fmtTime(Infinity)]).to.deep.equal(['45:00', '0:59', '0:00', '1:01', '?']);
  });

  it('prints its usage with --help', async () => {
    const { stdout } = await finetune(['--help']);
    expect(stdout).to.include('usage: glm46v finetune --model DIR --data FILE.jsonl --out DIR');
    expect(stdout).to.include('--lora-targets STRING');
  });

  it('rejects bad flags with a one-line reason', async () => {
    const cases: [string[], RegExp][] = [
      [['--model', TINY_A], /--data is required/],
      [[...base('/tmp/x'), '--on-too-long', 'truncate'], /--on-too-long must be one of skip, error, got 'truncate'/],
      [[...base('/tmp/x'), '--batch-size', '0'], /--batch-size must be an integer >= 1, got 0/],
      [[...base('/tmp/x'), '--lora-alpha', '8'], /--lora-alpha needs --lora-rank/],
      [[...base('/tmp/x'), '--lora-rank', '2', '--lora-alpha', '0'], /--lora-alpha must be > 0, got 0/],
      [[...base('/tmp/x'), '--lora-rank', '2', '--lora-targets', 'nope'], /target 'nope' matches no Linear layer/],
      [[...base('/tmp/x'), '--first-steps', '2'], /--first-data and --first-steps go together/],
      [[...base('/tmp/x'), '--vision-lr-scale', '0'], /--vision-lr-scale must be > 0, got 0/],
      [[...base('/tmp/x'), '--train-vision-keys', 'position_embedding'], /--train-vision-keys needs --freeze-vision/],
      [[...base('/tmp/x'), '--freeze-vision', '--train-vision-keys', 'nope'], /trainVisionKeys: no vision weight key contains 'nope'/],
      [[...base('/tmp/x'), '--first-data', path.join(DATA, 'eval.jsonl'), '--first-steps', '4', '--steps', '4'], /--first-steps \(4\) must be fewer than --steps \(4\)/],
    ];
    for (const [argv, re] of cases) {
      let err: Error | undefined;
      await finetune(argv).catch((e: Error) => (err = e));
      expect(err?.message, String(re)).to.match(re);
    }
  });

  it('names the line of bad data', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(file, fs.readFileSync(path.join(DATA, 'train.jsonl'), 'utf8').split('\n')[1] + '\n{"messages": [{"role": "user", "content": "no answer"}]}\n');
    let err: Error | undefined;
    await finetune(['--model', TINY_A, '--data', file, '--out', dir]).catch((e: Error) => (err = e));
    expect(err?.message).to.equal(`${file}:2: no assistant turn to learn from`);
  });
});
