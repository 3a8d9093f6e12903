// The `glm46v serve` command: --help, one-line errors on bad input, and a start on an ephemeral port that answers
// /health and stops on SIGTERM.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { spawn, spawnSync } from 'child_process';
import * as path from 'path';

const BIN = path.join(__dirname, '..', '..', 'bin', 'glm46v.js');
const env = { ...process.env, GLM46V_BACKEND: tf.getBackend() };
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'serve', ...args], { encoding: 'utf8', env });

describe('glm46v serve (command)', () => {
  it('prints its usage with --help', () => {
    const r = run('--help');
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/^usage: glm46v serve \[--model DIR\] \[--host 127.0.0.1\] \[--port 8000\] \[--allow-files DIR\]/);
  });

  for (const [args, message] of [
    [['--port', '70000'], 'glm46v serve: --port must be an integer in [0, 65535], got 70000'],
    [['--model', '/nonexistent-model'], 'glm46v serve: model folder /nonexistent-model is not readable: no config.json'],
    [['--allow-files', '/nonexistent-dir'], 'glm46v serve: --allow-files /nonexistent-dir is not a folder'],
  ] as const) {
    it(`refuses ${args.join(' ')} in one line`, () => {
      const r = run(...args);
      expect(r.status).to.not.equal(0);
      expect(r.stderr.trim()).to.equal(message);
    });
  }

  it('serves on 127.0.0.1:0 until SIGTERM', async () => {
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { env });
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(err);
        if (m) resolve(m[1]!);
      });
      child.on('exit', () => reject(new Error(`serve exited: ${err}`)));
    });
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data[0]!.id).to.equal('glm46v');
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', resolve);
      child.kill('SIGTERM');
    });
    expect(code).to.equal(0);
    expect(err).to.match(/GET \/v1\/models 200 ms=\d+/);
  });
});
