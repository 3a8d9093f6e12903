// Every sub-command refuses a bad flag value in one line that names the flag and what it accepts, exit 1, before
// loading anything. The commands run as a user runs them (bin/glm46v.js), a few at a time.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CliError } from '../../cli/args';
import { command as finetune } from '../../cli/finetune';
import { command as generate } from '../../cli/generate';
import { command as inspect } from '../../cli/inspect';
import { command as parity } from '../../cli/parity';
import { command as setup } from '../../cli/setup';
import { fixturePath } from '../helpers/fixtures';

const BIN = path.join(__dirname, '..', '..', 'bin', 'glm46v.js');

interface Result { status: number | null; stdout: string; stderr: string }

function run(args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, GLM46V_BACKEND: tf.getBackend() } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** Runs every argument list, `width` processes at a time. */
async function runAll(cases: string[][], width = 2): Promise<Result[]> {
  const results: Result[] = new Array(cases.length);
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      results[i] = await run(cases[i]!);
    }
  };
  await Promise.all(Array.from({ length: width }, worker));
  return results;
}

const OUT = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'flags-')), 'run'); // never created: nothing gets that far
const FT = ['finetune', '--model', fixturePath('models', 'tiny_a'), '--data', fixturePath('train', 'data', 'train.jsonl'), '--out', OUT];
const GEN = ['generate', '--prompt', 'x'];
const REF = fixturePath('model', 'tiny_a_batch.safetensors');

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<void> }> = { generate, finetune, parity, inspect, setup };

/** The cases and finetune's numeric flags, run as a user runs them: [arguments, the stderr line after 'glm46v <command>: '] */
const SPAWNED: [string[], string][] = [
  [[...GEN, '--max-new-tokens', '-5'], '--max-new-tokens must be an integer >= 1, got -5'],
  [[...GEN, '--max-new-tokens', '0'], '--max-new-tokens must be an integer >= 1, got 0'],
  [[...GEN, '--max-new-tokens', '1.5'], '--max-new-tokens must be an integer >= 1, got 1.5'],
  [[...GEN, '--temperature', '-1'], '--temperature must be a number >= 0, got -1'],
  [[...GEN, '--top-p', '5'], '--top-p must be a number in (0, 1], got 5'],
  [[...GEN, '--top-k', '-3'], '--top-k must be an integer >= 0, got -3'],
  [[...GEN, '--seed', '1.5'], '--seed must be an integer in [0, 4294967295], got 1.5'],
  [[...FT, '--steps', '0'], '--steps must be an integer >= 1, got 0'],
  [[...FT, '--epochs', '0'], '--epochs must be an integer >= 1, got 0'],
  [[...FT, '--batch-size', '0'], '--batch-size must be an integer >= 1, got 0'],
  [[...FT, '--lr', '0'], '--lr must be a number > 0, got 0'],
  [[...FT, '--warmup', '-1'], '--warmup must be an integer >= 0, got -1'],
  [[...FT, '--weight-decay', '-0.1'], '--weight-decay must be a number >= 0, got -0.1'],
  [[...FT, '--clip', '-1'], '--clip must be a number >= 0, got -1'],
  [[...FT, '--lora-rank', '0'], '--lora-rank must be an integer >= 1, got 0'],
  [[...FT, '--lora-rank', '2', '--lora-alpha', '0'], '--lora-alpha must be a number > 0, got 0'],
  [[...FT, '--lora-rank', '2', '--lora-dropout', '1'], '--lora-dropout must be a number in [0, 1), got 1'],
  [[...FT, '--shard-size', '0'], '--shard-size must be an integer >= 1, got 0'],
  [[...FT, '--eval-every', '0'], '--eval-every must be an integer >= 1, got 0'],
  [['parity', '--reference', REF, '--atol', '-1'], '--atol must be a number >= 0, got -1'],
  [['inspect', '--model', '/nonexistent-model'], 'model folder /nonexistent-model is not readable: no config.json'],
  [['setup', '--gpu=yes'], "--gpu takes no value, got 'yes'"],
];

/** More of the same, in this process (each spawn costs half a second): the error the command throws, which main.ts prints as above. */
const IN_PROCESS: [string[], string][] = [
  [[...GEN, '--max-new-tokens', 'ten'], "--max-new-tokens must be an integer >= 1, got 'ten'"],
  [[...GEN, '--max-new-tokens='], "--max-new-tokens must be an integer >= 1, got ''"],
  [[...GEN, '--max-new-tokens', 'Infinity'], '--max-new-tokens must be an integer >= 1, got Infinity'],
  [[...GEN, '--top-p', '0'], '--top-p must be a number in (0, 1], got 0'],
  [[...GEN, '--top-k', '2.5'], '--top-k must be an integer >= 0, got 2.5'],
  [[...GEN, '--seed', '-1'], '--seed must be an integer in [0, 4294967295], got -1'],
  [[...GEN, '--seed', '4294967296'], '--seed must be an integer in [0, 4294967295], got 4294967296'],
  [[...GEN, '--enable-thinking=no'], "--enable-thinking takes no value, got 'no'"],
  [['generate', '--max-new-tokens', '--prompt', 'x'], '--max-new-tokens needs a value'],
  [[...GEN, '--model', ''], '--model must not be empty'],
  [[...GEN, '--top_p', '0.5'], 'unknown option --top_p'],
  [[...GEN, 'extra'], "unexpected argument 'extra'"],
  [[...FT, '--steps', '2.5'], '--steps must be an integer >= 1, got 2.5'],
  [[...FT, '--grad-accum', '-2'], '--grad-accum must be an integer >= 1, got -2'],
  [[...FT, '--lr', '-1e-4'], '--lr must be a number > 0, got -1e-4'],
  [[...FT, '--warmup', '0.5'], '--warmup must be an integer >= 0, got 0.5'],
  [[...FT, '--seed', '1.5'], '--seed must be an integer in [0, 4294967295], got 1.5'],
  [[...FT, '--lora-rank', '2', '--lora-dropout', '-0.1'], '--lora-dropout must be a number in [0, 1), got -0.1'],
  [[...FT, '--vision-lr-scale', '0'], '--vision-lr-scale must be a number > 0, got 0'],
  [[...FT, '--max-length', '0'], '--max-length must be an integer >= 1, got 0'],
  [[...FT, '--save-every', '1.5'], '--save-every must be an integer >= 1, got 1.5'],
  [[...FT, '--stop-after', '0'], '--stop-after must be an integer >= 1, got 0'],
  [[...FT, '--first-steps', '0'], '--first-steps must be an integer >= 1, got 0'],
  [[...FT, '--on-too-long', 'truncate'], "--on-too-long must be one of skip, error, got 'truncate'"],
  [[...FT, '--save-dtype', 'F16'], "--save-dtype must be one of F32, BF16, got 'F16'"],
  [['finetune', '--model', fixturePath('models', 'tiny_a'), '--data', fixturePath('train', 'data', 'train.jsonl')], '--out is required (see --help)'],
  [['finetune', '--model', fixturePath('models', 'tiny_a'), '--out', '--resume'], '--out needs a value'],
  [[...FT, '--resume', '--overwrite'], '--resume and --overwrite exclude each other: --resume continues the run in --out, --overwrite replaces it'],
  [['parity', '--reference', REF, '--rtol', 'x'], "--rtol must be a number >= 0, got 'x'"],
  [['parity'], '--reference is required (see --help)'],
];

const title = (args: string[], message: string) => `${args[0]} ${args.slice(1).filter((a) => !a.startsWith('/')).join(' ')}: '${message}'`;

describe('glm46v flags', () => {
  let results: Result[] = [];
  before(async () => {
    results = await runAll(SPAWNED.map(([args]) => args));
  });

  SPAWNED.forEach(([args, message], i) => {
    it(`${title(args, message)}, exit 1`, () => {
      const r = results[i]!;
      expect(r.stderr).to.equal(`glm46v ${args[0]}: ${message}\n`);
      expect(r.status).to.equal(1);
      expect(r.stdout).to.equal('');
    });
  });

  for (const [args, message] of IN_PROCESS) {
    it(title(args, message), async () => {
      const command = COMMANDS[args[0]!]!;
      let err: unknown;
      await command.run(args.slice(1)).catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(CliError);
      expect((err as CliError).message).to.equal(message);
    });
  }

  it('nothing was created at the --out of the refused finetune runs', () => {
    expect(fs.existsSync(OUT)).to.equal(false);
  });

  it('shows each number flag\'s range in --help', async () => {
    const [gen, ft] = await runAll([['generate', '--help'], ['finetune', '--help']]);
    expect(gen!.status).to.equal(0);
    expect(gen!.stdout).to.include('  --top-p NUMBER  nucleus sampling mass (1 = off) [a number in (0, 1]]\n');
    expect(gen!.stdout).to.include('  --max-new-tokens NUMBER  at most this many new tokens (default 256) [an integer >= 1]\n');
    expect(ft!.stdout).to.include("  --save-dtype STRING  weights of the saved model: 'F32' (default) or 'BF16' [one of F32, BF16]\n");
  });
});

describe('glm46v (no command, an unknown command)', () => {
  it('exits 2 with the usage on stdout when no command is given, 2 with the usage on stderr for an unknown one', async () => {
    const [none, unknown] = await runAll([[], ['train']]);
    expect(none!.status).to.equal(2);
    expect(none!.stdout.split('\n')[0]).to.equal('usage: glm46v <command> [options]');
    expect(unknown!.status).to.equal(2);
    expect(unknown!.stderr.split('\n').slice(0, 2)).to.deep.equal(["glm46v: unknown command 'train'", 'usage: glm46v <command> [options]']);
  });
});
