// The package as a user gets it: `npm pack`, then `npm install <tarball>` into a temporary project, where the README's
// TypeScript example (examples/readme.mts, the same text as the README's block) and its two commands run as written.
// Not a *.spec.ts: the install takes ~20 s, so scripts/package/test_package.sh runs this once in `npm test`, not once
// per backend. GLM46V_KEEP_PACKAGE_DIR=1 keeps the temporary project for a look afterwards.
import { expect } from 'chai';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const EXAMPLE = path.join(ROOT, 'examples', 'readme.mts');
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Run { status: number | null; stdout: string; stderr: string }

// npm settings that reach the inner npm from the user's own environment (registry, proxy, cache) are kept; the rest of
// the npm_* variables the outer `npm test` sets (local_prefix, prefix, allow_scripts, lifecycle) would change its install.
const NPM_KEEP = /^npm_config_(registry|cache|userconfig|globalconfig|cafile|nodedir|proxy|https_proxy|noproxy|strict_ssl)$/i;

/** The environment of a user's shell: no npm_* variables of the outer `npm test`, none of our backend switches. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    const outerNpm = (/^npm_/i.test(k) && !NPM_KEEP.test(k)) || k === 'INIT_CWD';
    if (!outerNpm && k !== 'GLM46V_BACKEND' && k !== 'GLM46V_VERBOSE') env[k] = v;
  }
  return { ...env, ...extra };
}

function run(cwd: string, cmd: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(cmd, args, { cwd, env: userEnv(env), encoding: 'utf8', timeout: 240000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lines = (s: string) => s.split('\n').filter((l) => l !== '');
const show = (r: Run) => `exit ${r.status}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

/** What glm46v itself prints on stderr around an answer: the backend line, then the timing line; nothing else. */
function expectQuietStderr(r: Run): void {
  const err = lines(r.stderr);
  expect(err, show(r)).to.have.length(2);
  expect(err[0], show(r)).to.match(/^glm46v: backend \S+/);
  expect(err[1], show(r)).to.match(/^tokens=\d+ prefill_ms=\d+ decode_tok_s=[\d.]+$/);
}

describe('examples/readme.mts', () => {
  it("is the README's TypeScript block, character for character", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const section = readme.split(/^## /m).find((s) => s.startsWith('Use from TypeScript\n'));
    expect(section, "README.md has no '## Use from TypeScript' section").to.be.a('string');
    const block = /^```ts\n([\s\S]*?)^```$/m.exec(section!);
    expect(block, "the README's 'Use from TypeScript' section has no ```ts block").to.not.equal(null);
    expect(fs.readFileSync(EXAMPLE, 'utf8')).to.equal(block![1]);
  });
});

describe('the packed package, installed into a new project', function () {
  this.timeout(600000);
  let tmp = '';
  let project = '';
  let install: Run;
  const installed = (...p: string[]) => path.join(project, 'node_modules', 'glm46v', ...p);
  const glm46v = (args: string[], env: Record<string, string> = {}) => run(project, 'npx', ['--no-install', 'glm46v', ...args], env);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glm46v-package-'));
    const t0 = performance.now();
    const pack = run(ROOT, NPM, ['pack', '--pack-destination', tmp]); // prepack builds dist/ first
    expect(pack.status, show(pack)).to.equal(0);
    const tarballs = fs.readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
    expect(tarballs, show(pack)).to.have.length(1);
    const t1 = performance.now();
    project = path.join(tmp, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'try-glm46v', private: true }, null, 2));
    // typescript and @types/node only for the type check of the example; they have no install scripts of their own
    install = run(project, NPM, ['install', path.join(tmp, tarballs[0]!), 'typescript@5.9.3', '@types/node@20.19.25',
      '--prefer-offline', '--no-audit', '--no-fund']);
    const s = (ms: number) => `${(ms / 1000).toFixed(0)} s`;
    console.log(`    npm pack ${s(t1 - t0)}, npm install ${s(performance.now() - t1)}`);
  });

  after(() => {
    if (tmp && process.env.GLM46V_KEEP_PACKAGE_DIR !== '1') fs.rmSync(tmp, { recursive: true, force: true });
    else if (tmp) console.log(`kept ${tmp}`);
  });

  it('installs with no output but npm\'s own lines', () => {
    expect(install.status, show(install)).to.equal(0);
    for (const l of lines(install.stdout)) expect(l, show(install)).to.match(/^(added|changed|removed) \d+ packages?|^up to date/);
    for (const l of lines(install.stderr)) expect(l, show(install)).to.match(/^npm (warn|notice) /);
  });

  it('runs the README example as written, as .mts', () => {
    fs.copyFileSync(EXAMPLE, path.join(project, 'readme.mts'));
    const r = run(project, 'npx', ['--no-install', 'tsx', 'readme.mts']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout, show(r)).to.equal('2\n');
    expect(lines(r.stderr), show(r)).to.have.length(1);
    expect(r.stderr, show(r)).to.match(/^glm46v: backend \S+/);
  });

  it("runs the README example in the clone too, once built (the package resolves 'glm46v' to itself)", () => {
    const r = run(ROOT, 'npx', ['--no-install', 'tsx', path.relative(ROOT, EXAMPLE)]);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout, show(r)).to.equal('2\n');
  });

  it('runs the README example as .ts in a "type": "module" project', () => {
    const esm = path.join(project, 'esm');
    fs.mkdirSync(esm);
    fs.writeFileSync(path.join(esm, 'package.json'), '{ "type": "module" }\n');
    fs.copyFileSync(EXAMPLE, path.join(esm, 'readme.ts'));
    const r = run(esm, 'npx', ['--no-install', 'tsx', 'readme.ts']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout, show(r)).to.equal('2\n');
  });

  it('type-checks the README example against the installed types (strict, nodenext)', () => {
    fs.copyFileSync(EXAMPLE, path.join(project, 'check.mts'));
    // the same calls through require(): the CommonJS entry's types
    fs.writeFileSync(path.join(project, 'check.cts'), [
      "import glm = require('glm46v');",
      "const model: InstanceType<typeof glm.Glm46VForConditionalGeneration> = glm.loadModel(glm.packageFile('assets', 'model'));",
      'model.dispose();', '',
    ].join('\n'));
    fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true, skipLibCheck: true, noEmit: true, types: ['node'],
      },
      files: ['check.mts', 'check.cts'],
    }, null, 2));
    const r = run(project, 'npx', ['--no-install', 'tsc', '-p', 'tsconfig.json']);
    expect(r.status, show(r)).to.equal(0);
    // and a wrong use is an error, so the check above did read the package's types
    fs.writeFileSync(path.join(project, 'wrong.mts'), "import { loadModel } from 'glm46v';\nconst n: number = loadModel;\n");
    const wrong = run(project, 'npx', ['--no-install', 'tsc', '--noEmit', '--module', 'nodenext', '--skipLibCheck', 'wrong.mts']);
    expect(wrong.status, show(wrong)).to.equal(2);
    expect(wrong.stdout, show(wrong)).to.match(/wrong\.mts\(2,7\): error TS2322: Type '\(dir: string\) => Glm4vForConditionalGeneration' is not assignable to type 'number'/);
  });

  it("exports the same objects to import and require, every value export of index.ts", () => {
    fs.writeFileSync(path.join(project, 'exports.mjs'), [
      "import * as esm from 'glm46v';",
      "import { createRequire } from 'module';",
      "const cjs = createRequire(import.meta.url)('glm46v');",
      "const names = Object.keys(esm).filter((k) => k !== 'default').sort();",
      'const same = names.filter((k) => esm[k] === cjs[k]).length;',
      "const entry = { import: import.meta.resolve('glm46v'), require: createRequire(import.meta.url).resolve('glm46v') };",
      "console.log(JSON.stringify({ names, same, cjs: Object.keys(cjs).filter((k) => k !== '__esModule').sort(), default: esm.default === cjs, entry }));",
      '',
    ].join('\n'));
    const r = run(project, process.execPath, ['exports.mjs']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr, show(r)).to.equal('');
    const got = JSON.parse(r.stdout) as { names: string[]; same: number; cjs: string[]; default: boolean; entry: { import: string; require: string } };
    // the exports field's two entries (without it Node would guess the names of dist/index.js with its lexer)
    expect(got.entry.import).to.equal(`file://${installed('dist', 'index.mjs')}`);
    expect(got.entry.require).to.equal(installed('dist', 'index.js'));
    // index.ts's value exports, as the source module has them (this process runs the TypeScript through tsx)
    const source = Object.keys(require(path.join(ROOT, 'index.ts')) as object).filter((k) => k !== '__esModule').sort();
    expect(got.names).to.deep.equal(source);
    expect(got.cjs).to.deep.equal(source);
    expect(got.same, 'exports that are not the same object through import and require').to.equal(source.length);
    expect(got.default).to.equal(true);
  });

  it("require('glm46v') works from CommonJS and runs the built-in model", () => {
    fs.writeFileSync(path.join(project, 'smoke.cjs'), [
      "const { initBackend, loadModel, packageFile, shutdownBackend, tf } = require('glm46v');",
      '(async () => {',
      '  await initBackend({ quiet: true });',
      "  const model = loadModel(packageFile('assets', 'model'));",
      '  const { logits } = model.forward({ inputIds: [[1, 2, 3]], attentionMask: [[1, 1, 1]] });',
      "  console.log(JSON.stringify(logits.shape), tf.getBackend() !== undefined);",
      '  model.dispose();',
      '  shutdownBackend();',
      '})();',
      '',
    ].join('\n'));
    const r = run(project, process.execPath, ['smoke.cjs']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stderr, show(r)).to.equal('');
    const vocab = (JSON.parse(fs.readFileSync(installed('assets', 'model', 'config.json'), 'utf8')) as { text_config: { vocab_size: number } }).text_config.vocab_size;
    expect(r.stdout).to.equal(`[1,3,${vocab}] true\n`);
  });

  it("answers the README's command: npx glm46v generate --image count.png --prompt 'How many shapes are there?'", () => {
    const r = glm46v(['generate', '--image', installed('assets', 'examples', 'count.png'), '--prompt', 'How many shapes are there?']);
    expect(r.status, show(r)).to.equal(0);
    expect(r.stdout, show(r)).to.equal('2\n');
    expectQuietStderr(r);
  });

  it('prints nothing else on the wasm and cpu backends either', () => {
    for (const backend of ['wasm', 'cpu']) {
      const r = glm46v(['generate', '--image', installed('assets', 'examples', 'count.png'), '--prompt', 'How many shapes are there?'], { GLM46V_BACKEND: backend });
      expect(r.status, show(r)).to.equal(0);
      expect(r.stdout, show(r)).to.equal('2\n');
      expectQuietStderr(r);
      expect(r.stderr, show(r)).to.match(new RegExp(`^glm46v: backend ${backend}\\n`));
    }
  });

  // `npm test`'s equivalents for an installed package (its specs and fixtures are not shipped)
  it("the built-in model answers each of the package's examples (assets/examples/examples.json)", () => {
    const examples = JSON.parse(fs.readFileSync(installed('assets', 'examples', 'examples.json'), 'utf8')) as { image: string; question: string; answer: string }[];
    expect(examples).to.have.length(3);
    for (const ex of examples) {
      const r = glm46v(['generate', '--image', installed('assets', 'examples', ex.image), '--prompt', ex.question]);
      expect(r.status, show(r)).to.equal(0);
      expect(r.stdout.trim(), `${ex.image}: ${ex.question}`).to.equal(ex.answer);
    }
  });

  it("matches transformers on a reference file (glm46v parity, forward and gradients)", () => {
    const r = glm46v(['parity', '--reference', path.join(ROOT, 'spec', 'fixtures', 'model', 'tiny_a_image.safetensors')]);
    expect(r.status, show(r)).to.equal(0);
    expect(lines(r.stdout).pop(), show(r)).to.match(/^parity: (\d+)\/\1 tensors within atol=/);
  });

  it("serves: `glm46v serve --port 0` answers the README's question over HTTP, then stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [installed('bin', 'glm46v.js'), 'serve', '--port', '0'], { cwd: project, env: userEnv() });
    const killer = setTimeout(() => child.kill('SIGKILL'), 60000);
    let stderr = '';
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString();
          const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`glm46v serve exited (${code}) before listening: ${stderr}`)));
      });
      const image = fs.readFileSync(installed('assets', 'examples', 'count.png')).toString('base64');
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'glm46v', messages: [{ role: 'user', content: [
          { type: 'image_url', image_url: { url: `data:image/png;base64,${image}` } }, { type: 'text', text: 'How many shapes are there?' }] }] }),
      });
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      expect(res.status, stderr).to.equal(200);
      expect(body.choices[0]!.message.content, stderr).to.equal('2');
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited, stderr).to.equal(0);
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('inspects the built-in model it ships', () => {
    const r = glm46v(['inspect']);
    expect(r.status, show(r)).to.equal(0);
    // the counts read off the shipped safetensors header: 8-byte length, then the JSON header
    const file = fs.readFileSync(installed('assets', 'model', 'model.safetensors'));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString('utf8')) as Record<string, { shape?: number[] }>;
    const shapes = Object.entries(header).filter(([k]) => k !== '__metadata__').map(([, v]) => v.shape!);
    const params = shapes.reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);
    expect(lines(r.stdout).pop()).to.equal(`inspect: ${shapes.length} tensors, ${params} parameters`);
  });

  it("has the native backend that the package's postinstall built, or says why not", () => {
    const status = JSON.parse(fs.readFileSync(installed('native', 'status.json'), 'utf8')) as { ok: boolean; reason?: string };
    if (status.ok) {
      const r = glm46v(['setup']);
      expect(r.status, show(r)).to.equal(0);
      expect(lines(r.stderr), show(r)).to.have.length(1);
      expect(r.stderr, show(r)).to.match(/^glm46v: native TensorFlow backend ready \(TensorFlow [\d.]+, tfjs-node(-gpu)?\)\n$/);
      const gen = glm46v(['generate', '--image', installed('assets', 'examples', 'count.png'), '--prompt', 'How many shapes are there?']);
      expect(gen.stderr, show(gen)).to.match(/^glm46v: backend tensorflow \(TensorFlow /);
    } else {
      expect(process.env.GLM46V_REQUIRE_NATIVE, `GLM46V_REQUIRE_NATIVE=1 but the install did not build it: ${status.reason}`).to.not.equal('1');
      expect(status.reason).to.be.a('string').and.not.equal('');
    }
  });
});
