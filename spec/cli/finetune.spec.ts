import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawnSync } from 'child_process';
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
    const fresh = () => path.join(tmpDir(), 'run');
    const cases: [string[], string][] = [
      [['--model', TINY_A], '--data is required (see --help)'],
      [[...base(fresh()), '--lora-alpha', '8'], '--lora-alpha needs --lora-rank'],
      [[...base(fresh()), '--lora-rank', '2', '--lora-targets', 'nope'], "applyLora: target 'nope' matches no Linear layer"],
      [[...base(fresh()), '--first-steps', '2'], '--first-data and --first-steps go together'],
      [[...base(fresh()), '--train-vision-keys', 'position_embedding'], '--train-vision-keys needs --freeze-vision'],
      [[...base(fresh()), '--freeze-vision', '--train-vision-keys', 'nope'], "trainVisionKeys: no vision weight key contains 'nope'"],
      [[...base(fresh()), '--first-data', path.join(DATA, 'eval.jsonl'), '--first-steps', '4', '--steps', '4'], '--first-steps (4) must be fewer than --steps (4)'],
    ];
    for (const [argv, message] of cases) {
      let err: Error | undefined;
      await finetune(argv).catch((e: Error) => (err = e));
      expect(err?.message, message).to.include(message);
    }
  });

  it('names the line of bad data', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.jsonl');
    fs.writeFileSync(file, fs.readFileSync(path.join(DATA, 'train.jsonl'), 'utf8').split('\n')[1] + '\n{"messages": [{"role": "user", "content": "no answer"}]}\n');
    let err: Error | undefined;
    await finetune(['--model', TINY_A, '--data', file, '--out', path.join(dir, 'run')]).catch((e: Error) => (err = e));
    expect(err?.message).to.equal(`${file}:2: no assistant turn to learn from`);
  });
});

const BIN = path.join(__dirname, '..', '..', 'bin', 'glm46v.js');
const spawnFinetune = (argv: string[]) => spawnSync(process.execPath, [BIN, 'finetune', ...argv], { encoding: 'utf8', env: { ...process.env, GLM46V_BACKEND: tf.getBackend() } });

/** An earlier run's folder: a complete checkpoint, a log, a plot, a final model and a file of the user's. */
function earlierRun(withCheckpoint: boolean): string {
  const out = tmpDir();
  if (withCheckpoint) {
    fs.mkdirSync(path.join(out, 'checkpoint-3'));
    fs.writeFileSync(path.join(out, 'checkpoint-3', 'trainer_state.json'), '{"step": 3}\n');
  }
  fs.mkdirSync(path.join(out, 'final'));
  fs.writeFileSync(path.join(out, 'final', 'model.safetensors'), 'the earlier model');
  fs.writeFileSync(path.join(out, 'log.jsonl'), '{"step": 1, "loss": 1}\n');
  fs.writeFileSync(path.join(out, 'loss.png'), 'the earlier plot');
  fs.writeFileSync(path.join(out, 'notes.txt'), 'mine');
  return out;
}

/** Every file under `dir` with its bytes, to show that nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files[path.relative(dir, p)] = fs.readFileSync(p, 'base64');
    }
  };
  walk(dir);
  return files;
}

describe('glm46v finetune --out', () => {
  for (const [what, withCheckpoint, extra, message] of [
    ['a non-empty folder without --resume or --overwrite', true, [], (out: string) => `--out ${out} is not empty: pass --resume to continue the run in it or --overwrite to replace it`],
    ['--resume where no checkpoint is left to resume from', false, ['--resume'], (out: string) => `--out ${out} holds no checkpoint-N to resume from: pass --overwrite to replace what it holds, or another --out`],
  ] as const) {
    it(`refuses ${what}, exit 1, leaving every file as it was`, () => {
      const out = earlierRun(withCheckpoint);
      const before = snapshot(out);
      const r = spawnFinetune([...base(out), '--steps', '1', ...extra]);
      expect(r.stderr).to.equal(`glm46v finetune: ${message(out)}\n`);
      expect(r.status).to.equal(1);
      expect(r.stdout).to.equal('');
      expect(snapshot(out)).to.deep.equal(before);
    });
  }

  it('refuses an --out that is a file, exit 1', () => {
    const file = path.join(tmpDir(), 'model.txt');
    fs.writeFileSync(file, 'not a folder');
    const r = spawnFinetune([...base(file), '--steps', '1']);
    expect(r.stderr).to.equal(`glm46v finetune: --out ${file} is a file, not a folder\n`);
    expect(r.status).to.equal(1);
    expect(fs.readFileSync(file, 'utf8')).to.equal('not a folder');
  });

  it('--overwrite replaces the earlier run (its checkpoints, log, plot and model) and leaves other files alone', async () => {
    const out = earlierRun(true);
    const { stdout } = await finetune([...base(out), '--steps', '1', '--overwrite']);
    const last = stdout.trim().split('\n').pop()!;
    expect(last).to.match(/^finetune: steps=1 final_loss=\d+\.\d{6} saved=(.+)$/);
    expect(last.split('saved=')[1]).to.equal(path.join(out, 'final'));
    expect(fs.existsSync(path.join(out, 'checkpoint-3'))).to.equal(false);
    expect(fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).to.deep.equal([1]);
    expect(fs.readFileSync(path.join(out, 'loss.png')).subarray(1, 4).toString()).to.equal('PNG');
    expect(fs.readFileSync(path.join(out, 'notes.txt'), 'utf8')).to.equal('mine');
    loadModel(path.join(out, 'final')).dispose();
  });

  it('an empty --out folder needs neither flag', async () => {
    const out = tmpDir();
    const { stdout } = await finetune([...base(out), '--steps', '1']);
    expect(stdout).to.include(`saved=${path.join(out, 'final')}`);
  });
});
