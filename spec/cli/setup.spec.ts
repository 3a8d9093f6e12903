// glm46v setup, as npm install runs it and as a user runs it: a missing prerequisite is one line and never fails an
// install, the package then runs on WASM and says why once, GLM46V_NATIVE=0 opts out without a word, and a second
// install reuses a working build. Each case writes its own native folder (GLM46V_NATIVE_DIR), never the package's.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { readStatus } from '../../lib/native/paths';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'glm46v.js');
const COUNT = path.join(ROOT, 'assets', 'examples', 'count.png');

/** A PATH with node alone: no python, so no pip. */
function pathWithoutPip(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nopip-'));
  fs.symlinkSync(process.execPath, path.join(dir, 'node'));
  return dir;
}

function glm46v(args: string[], env: Record<string, string | undefined>) {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete merged.GLM46V_BACKEND; // the default order: tensorflow, then wasm
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete merged[k];
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: merged, cwd: ROOT });
}

describe('glm46v setup', () => {
  it('without pip: npm install still succeeds with one line, and generate runs on WASM saying why', () => {
    const env = { PATH: pathWithoutPip(), GLM46V_NATIVE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'native-')), GLM46V_NATIVE: undefined };
    const install = glm46v(['setup', '--postinstall'], env);
    expect(install.status, install.stderr).to.equal(0);
    expect(install.stderr.trim().split('\n')).to.deep.equal([
      "glm46v: native TensorFlow backend not built: no pip found (python3 -m pip): install it, e.g. Debian's python3-pip; the package runs on WASM. Add it later with 'npx glm46v setup'",
    ]);
    const gen = glm46v(['generate', '--image', COUNT, '--prompt', 'How many shapes are there?'], env);
    expect(gen.status, gen.stderr).to.equal(0);
    expect(gen.stdout.trim()).to.equal('2');
    expect(gen.stderr.split('\n')[0]).to.equal(
      "glm46v: backend wasm (native TensorFlow backend not built: no pip found (python3 -m pip): install it, e.g. Debian's python3-pip; 'npx glm46v setup' builds it)");
  });

  it('without pip, run by hand: the same line and exit 1', () => {
    const r = glm46v(['setup'], { PATH: pathWithoutPip(), GLM46V_NATIVE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'native-')), GLM46V_NATIVE: undefined });
    expect(r.status).to.equal(1);
    expect(r.stderr.trim()).to.equal("glm46v: native TensorFlow backend not built: no pip found (python3 -m pip): install it, e.g. Debian's python3-pip");
  });

  it('GLM46V_NATIVE=0 at install: nothing built, nothing said, generate runs on WASM', () => {
    const env = { GLM46V_NATIVE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'native-')), GLM46V_NATIVE: '0' };
    const install = glm46v(['setup', '--postinstall'], env);
    expect([install.status, install.stderr]).to.deep.equal([0, '']);
    const gen = glm46v(['generate', '--image', COUNT, '--prompt', 'How many shapes are there?', '--max-new-tokens', '2'], env);
    expect(gen.status, gen.stderr).to.equal(0);
    expect(gen.stderr.split('\n')[0]).to.equal('glm46v: backend wasm');
  });

  it('a GLM46V_NATIVE it does not know: named in the error, and npm install still succeeds', () => {
    const env = { GLM46V_NATIVE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'native-')), GLM46V_NATIVE: 'cuda' };
    expect(glm46v(['setup'], env)).to.include({ status: 1, stderr: 'glm46v setup: GLM46V_NATIVE=cuda: expected 0, 1, cpu or gpu\n' });
    const install = glm46v(['setup', '--postinstall'], env);
    expect([install.status, install.stderr]).to.deep.equal([0, 'glm46v setup: GLM46V_NATIVE=cuda: expected 0, 1, cpu or gpu; the package runs on WASM\n']);
  });

  if (readStatus()?.ok) {
    it("a second install reuses the package's working build and says so in one line", () => {
      const status = readStatus()!;
      const r = glm46v(['setup', '--postinstall', ...(status.variant === 'gpu' ? ['--gpu'] : [])], { GLM46V_NATIVE: undefined });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/^glm46v: native TensorFlow backend ready \(TensorFlow 2\.21\.0, tfjs-node(-gpu)?\)\n$/);
    });

    it('the default order picks it, reported with its TensorFlow version and device, with no TensorFlow log lines', () => {
      const r = glm46v(['generate', '--image', COUNT, '--prompt', 'How many shapes are there?'], { GLM46V_VERBOSE: undefined, TF_CPP_MIN_LOG_LEVEL: undefined });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout).to.equal('2\n');
      const lines = r.stderr.trim().split('\n');
      expect(lines).to.have.length(2);
      expect(lines[0]).to.match(/^glm46v: backend tensorflow \(TensorFlow 2\.21\.0, (CPU|GPU|CPU: tfjs-node-gpu found no CUDA GPU)\)$/);
      expect(lines[1]).to.match(/^tokens=2 prefill_ms=\d+ decode_tok_s=[\d.]+$/);
    });

    it('--verbose lets TensorFlow speak', () => {
      const r = glm46v(['generate', '--verbose', '--image', COUNT, '--prompt', 'How many shapes are there?'], {});
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.match(/cpu_feature_guard|oneDNN|absl/);
    });
  }
});
