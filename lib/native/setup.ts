// `glm46v setup` (also run by npm install): builds the native TensorFlow backend from registry packages alone.
// tfjs-node's own install script downloads libtensorflow and a prebuilt addon from Google's storage, which users behind
// a proxy (and this project's machines) cannot reach. Here the TensorFlow C library comes from the pinned PyPI wheel
// (pip download, hashes checked), tfjs-node's sources from the npm registry (npm pack, integrity checked), and the
// addon is compiled with node-gyp. Anything missing ends in one line that says what and how to add it later.
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { packageRoot } from '../package_root';
import { addonPackageDir, cacheDir, nativeDir, NativeStatus, NativeVariant, readStatus, writeStatus } from './paths';

const TENSORFLOW = '2.21.0';
const TFJS_NODE = '4.22.0';
const N_API = 8;

/** The exact wheels (cp311 tags: the C library inside does not depend on the local Python). */
const WHEELS: Record<NativeVariant, string[]> = {
  cpu: ['tensorflow-cpu==2.21.0 --hash=sha256:2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c'],
  // tensorflow[and-cuda]==2.21.0 resolved once and pinned: CUDA 12.9 and cuDNN 9 as wheels, the driver from the host.
  gpu: [
    'tensorflow==2.21.0 --hash=sha256:9056fbc9ba04235810b71ae6cbd958a196e8804fb53bbcffbf3e23b56155f124',
    'nvidia-cublas-cu12==12.9.3.13 --hash=sha256:d7d51055f161b317c7105ddaae90e71eda059026074ffef93cf7cde2886bfe72',
    'nvidia-cuda-cupti-cu12==12.8.90 --hash=sha256:ea0cb07ebda26bb9b29ba82cda34849e73c166c18162d3913575b0c9db9a6182',
    'nvidia-cuda-nvcc-cu12==12.9.86 --hash=sha256:5d6a0d32fdc7ea39917c20065614ae93add6f577d840233237ff08e9a38f58f0',
    'nvidia-cuda-nvrtc-cu12==12.9.86 --hash=sha256:210cf05005a447e29214e9ce50851e83fc5f4358df8b453155d5e1918094dcb4',
    'nvidia-cuda-runtime-cu12==12.9.79 --hash=sha256:25bba2dfb01d48a9b59ca474a1ac43c6ebf7011f1b0b8cc44f54eb6ac48a96c3',
    'nvidia-cudnn-cu12==9.28.0.42 --hash=sha256:9ff58b7f36dacd0a93e89f8f2957b52466889217963701daa15e577317cfa375',
    'nvidia-cufft-cu12==11.4.1.4 --hash=sha256:c67884f2a7d276b4b80eb56a79322a95df592ae5e765cf1243693365ccab4e28',
    'nvidia-curand-cu12==10.3.10.19 --hash=sha256:49b274db4780d421bd2ccd362e1415c13887c53c214f0d4b761752b8f9f6aa1e',
    'nvidia-cusolver-cu12==11.7.5.82 --hash=sha256:15da72d1340d29b5b3cf3fd100e3cd53421dde36002eda6ed93811af63c40d88',
    'nvidia-cusparse-cu12==12.5.10.65 --hash=sha256:73060ce019ac064a057267c585bf1fd5a353734151f87472ff02b2c5c9984e78',
    'nvidia-nccl-cu12==2.32.3 --hash=sha256:bb94b2348e4861d5e8aa00b36c3d12d9bdf9c6369b82cbb723de0b582280a21c',
    'nvidia-nvjitlink-cu12==12.9.86 --hash=sha256:e3f1171dbdc83c5932a45f0f4c99180a70de9bd2718c1ab77d14104f6d7147f9',
  ],
};
const PLATFORMS = ['manylinux_2_27_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux_2_12_x86_64', 'manylinux2010_x86_64'];

const TFJS_PACKAGE: Record<NativeVariant, { name: string; integrity: string }> = {
  cpu: {
    name: '@tensorflow/tfjs-node',
    integrity: 'sha512-uHrXeUlfgkMxTZqHkESSV7zSdKdV0LlsBeblqkuKU9nnfxB1pC6DtoyYVaLxznzZy7WQSegjcohxxCjAf6Dc7w==',
  },
  gpu: {
    name: '@tensorflow/tfjs-node-gpu',
    integrity: 'sha512-p//NN6DGiN4hInUmIkRffaFVMcdTREUMjPyjW04J7OXvB2zBlQimj61eFKSgRrH3f5TnOfKzb0n56he/B6a4bw==',
  },
};

// Unpacks the wheels into one folder laid out as site-packages is, so that libtensorflow's own RUNPATH
// ($ORIGIN/../nvidia/*/lib) finds the CUDA wheels: lib/ (TensorFlow), include/ (the C API headers), nvidia/.
const UNPACK_PY = `
import glob, os, sys, zipfile
dl, out = sys.argv[1], sys.argv[2]
heads = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/',
         'tensorflow/include/tsl/', 'tensorflow/include/xla/tsl/')
for whl in sorted(glob.glob(os.path.join(dl, '*.whl'))):
    z = zipfile.ZipFile(whl)
    for n in z.namelist():
        if n in ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'):
            dest = os.path.join(out, 'lib', os.path.basename(n))
        elif n.startswith(heads) and n.endswith('.h'):
            dest = os.path.join(out, 'include', n[len('tensorflow/include/'):])
        elif n.startswith('nvidia/') and '/lib/' in n and '.so' in n:
            dest = os.path.join(out, n)
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(n) as src, open(dest, 'wb') as dst:
            while True:
                b = src.read(1 << 22)
                if not b: break
                dst.write(b)
`;

/**
 * The package's own addon: its C sources in lib/native/ (fused_ops.c needs float contraction off: the same bits as
 * tfjs; only the N-API entry point is exported, so no name of ours can clash with another library's in the process).
 */
const QUIET_SOURCES = ['quiet_dlopen.c', 'fused_ops.c', 'gemv.c', 'gemv.h', 'parallel.c', 'parallel.h', 'kernels.h', 'kernels_base.c', 'kernels_avx2.c', 'kernels_avx512.c', 'vec16.h', 'rows.inc', 'decode_attention.inc', 'tf_kernel_api.c', 'tf_kernel_api.h'];
const QUIET_GYP = {
  targets: [{ target_name: 'glm46v_quiet', sources: QUIET_SOURCES, cflags: ['-O2', '-ffp-contract=off', '-fvisibility=hidden', '-Wno-psabi'], libraries: ['-ldl', '-lpthread', '-lm'] }],
};

export interface SetupOptions {
  variant: NativeVariant;
  /** rebuild even when a working build is there */
  force?: boolean;
  /** progress lines (stderr by default) */
  log?: (line: string) => void;
}

/** A prerequisite or step that failed; the message is the one line the user sees. */
class SetupError extends Error {}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; logFile?: string } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (opts.logFile) fs.appendFileSync(opts.logFile, `$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}\n`);
  return { ok: r.status === 0 && !r.error, out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(), error: r.error };
}

const lastLine = (text: string) => text.split('\n').filter((l) => l.trim()).pop() ?? '';

function findPython(): string {
  for (const py of ['python3', 'python']) if (run(py, ['-m', 'pip', '--version']).ok) return py;
  throw new SetupError('no pip found (python3 -m pip): install it, e.g. Debian\'s python3-pip');
}

/** The folder whose include/node holds node_api.h, for node-gyp's --nodedir (it would download headers otherwise). */
function findNodeDir(): string {
  const set = process.env.npm_config_nodedir;
  if (set && !fs.existsSync(path.join(set, 'include', 'node', 'node_api.h'))) {
    throw new SetupError(`npm_config_nodedir=${set} has no include/node/node_api.h (the Node.js headers)`);
  }
  const candidates = [set, path.dirname(path.dirname(process.execPath)), '/usr', '/usr/local'];
  for (const c of candidates) if (c && fs.existsSync(path.join(c, 'include', 'node', 'node_api.h'))) return c;
  throw new SetupError(`no Node.js headers (node_api.h) under ${path.dirname(path.dirname(process.execPath))}/include/node: install them or set npm_config_nodedir`);
}

function findNodeGyp(): string {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(path.dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const c of candidates) if (c && fs.existsSync(c)) return c;
  try {
    return require.resolve('node-gyp/bin/node-gyp.js');
  } catch {
    throw new SetupError("node-gyp not found (it comes with npm; set npm_config_node_gyp to its bin/node-gyp.js)");
  }
}

function checkPrerequisites(): { python: string; nodeDir: string; nodeGyp: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new SetupError(`the native backend is built for Linux x86-64 only (this is ${process.platform}-${process.arch})`);
  }
  const python = findPython();
  for (const tool of ['cc', 'g++', 'make']) {
    if (!run(tool, ['--version']).ok) throw new SetupError(`no C/C++ toolchain (${tool} not found): install gcc, g++ and make`);
  }
  if (!run('npm', ['--version']).ok) throw new SetupError('npm not found on PATH');
  return { python, nodeDir: findNodeDir(), nodeGyp: findNodeGyp() };
}

/** The unpacked TensorFlow libraries in the shared cache; downloaded and unpacked once per variant. */
function ensureTensorflow(variant: NativeVariant, python: string, log: (l: string) => void): string {
  const dir = path.join(cacheDir(), `tensorflow-${TENSORFLOW}-${variant}`);
  if (fs.existsSync(path.join(dir, 'complete'))) return dir;
  const work = `${dir}.tmp-${process.pid}`;
  fs.rmSync(work, { recursive: true, force: true });
  fs.mkdirSync(path.join(work, 'download'), { recursive: true });
  try {
    const req = path.join(work, 'requirements.txt');
    fs.writeFileSync(req, WHEELS[variant].join('\n') + '\n');
    log(`downloading TensorFlow ${TENSORFLOW} (${variant === 'gpu' ? 'tensorflow[and-cuda], about 3.5 GB' : 'tensorflow-cpu, 274 MB'}) with pip`);
    const platforms = PLATFORMS.flatMap((p) => ['--platform', p]);
    const dl = run(python, ['-m', 'pip', 'download', '-q', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:',
      '--require-hashes', '--python-version', '3.11', '--implementation', 'cp', ...platforms, '-d', path.join(work, 'download'), '-r', req]);
    if (!dl.ok) {
      throw new SetupError(`pip could not download the TensorFlow wheel (${lastLine(dl.out) || dl.error?.message}): is PyPI reachable through pip's index and proxy settings?`);
    }
    log('unpacking libtensorflow and its C headers');
    const up = run(python, ['-c', UNPACK_PY, path.join(work, 'download'), work]);
    if (!up.ok) throw new SetupError(`unpacking the TensorFlow wheel failed (${lastLine(up.out)})`);
    fs.rmSync(path.join(work, 'download'), { recursive: true, force: true });
    // the link-time names binding.gyp asks for (-ltensorflow -ltensorflow_framework)
    fs.symlinkSync('libtensorflow_cc.so.2', path.join(work, 'lib', 'libtensorflow.so'));
    fs.symlinkSync('libtensorflow_framework.so.2', path.join(work, 'lib', 'libtensorflow_framework.so'));
    fs.writeFileSync(path.join(work, 'complete'), `tensorflow ${TENSORFLOW} ${variant}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(work, dir);
    return dir;
  } catch (e) {
    fs.rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/** tfjs-node's published package (sources, binding.gyp, kernels), with deps/ pointing at the cached TensorFlow. */
function unpackTfjsNode(variant: NativeVariant, tfDir: string, work: string, logFile: string): void {
  const { name, integrity } = TFJS_PACKAGE[variant];
  const packDir = path.join(work, 'pack');
  fs.mkdirSync(packDir, { recursive: true });
  const pack = run('npm', ['pack', `${name}@${TFJS_NODE}`, '--json', '--pack-destination', packDir], { logFile });
  if (!pack.ok) throw new SetupError(`npm could not fetch ${name}@${TFJS_NODE} (${lastLine(pack.out)})`);
  const info = (JSON.parse(pack.out.slice(pack.out.indexOf('['))) as { filename: string; integrity: string }[])[0]!;
  if (info.integrity !== integrity) throw new SetupError(`${name}@${TFJS_NODE}: integrity ${info.integrity} is not the pinned one`);
  const tar = run('tar', ['xzf', path.join(packDir, info.filename), '-C', work], { logFile });
  if (!tar.ok) throw new SetupError(`could not unpack ${info.filename} (${lastLine(tar.out)})`);
  fs.rmSync(packDir, { recursive: true, force: true });
  fs.symlinkSync(tfDir, path.join(work, 'package', 'deps'));
  // Outside the package (GLM46V_NATIVE_DIR), tfjs-node's require('@tensorflow/tfjs') must still reach our copy.
  if (path.relative(packageRoot(), work).startsWith('..')) {
    const tfjs = path.dirname(require.resolve('@tensorflow/tfjs/package.json'));
    for (const dep of ['@tensorflow/tfjs', '@tensorflow/tfjs-core', 'google-protobuf']) {
      const link = path.join(work, 'package', 'node_modules', dep);
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.symlinkSync(path.dirname(require.resolve(`${dep}/package.json`, { paths: [tfjs, __dirname] })), link);
    }
  }
}

function nodeGyp(cwd: string, nodeGypJs: string, nodeDir: string, extra: string[], logFile: string, what: string): void {
  const r = run(process.execPath, [nodeGypJs, 'rebuild', `--nodedir=${nodeDir}`, ...extra], { cwd, logFile });
  if (!r.ok) throw new SetupError(`building ${what} failed (${lastLine(r.out)}; log in ${logFile})`);
}

/** Runs lib/native/check in a child process: the build loads, and a matmul equals wasm's within 1e-5. */
function checkBuild(): { tensorflow: string; gpu: boolean; maxDiff: number } {
  const ext = path.extname(__filename);
  const file = path.join(__dirname, `check${ext}`);
  const args = ext === '.ts' ? [require.resolve('tsx/cli'), file] : [file];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, GLM46V_VERBOSE: '' } });
  const line = lastLine(r.stdout ?? '');
  let res: { tensorflow?: string; gpu?: boolean; maxDiff?: number; error?: string } = {};
  try {
    res = JSON.parse(line);
  } catch {
    throw new SetupError(`the built backend does not load (${lastLine(r.stderr ?? '') || `exit ${r.status ?? r.signal}`})`);
  }
  if (res.error || res.maxDiff === undefined) throw new SetupError(`the built backend does not run (${res.error})`);
  if (!(res.maxDiff <= 1e-5)) throw new SetupError(`the built backend's matmul differs from wasm's by ${res.maxDiff} (> 1e-5)`);
  return { tensorflow: res.tensorflow!, gpu: res.gpu === true, maxDiff: res.maxDiff };
}

function build(opts: SetupOptions, log: (l: string) => void): NativeStatus {
  const { variant } = opts;
  const pre = checkPrerequisites();
  const tfDir = ensureTensorflow(variant, pre.python, log);
  const native = nativeDir();
  fs.mkdirSync(native, { recursive: true });
  const logFile = path.join(native, 'build.log');
  fs.writeFileSync(logFile, '');
  const work = path.join(native, `build-${process.pid}`);
  fs.rmSync(work, { recursive: true, force: true });
  try {
    log(`building ${TFJS_PACKAGE[variant].name} ${TFJS_NODE} against TensorFlow ${TENSORFLOW}`);
    unpackTfjsNode(variant, tfDir, work, logFile);
    const gypVars = ['--module_name=tfjs_binding', `--module_path=lib/napi-v${N_API}`, `--napi_build_version=${N_API}`];
    nodeGyp(path.join(work, 'package'), pre.nodeGyp, pre.nodeDir, gypVars, logFile, 'the tfjs-node addon');
    const quiet = path.join(work, 'quiet');
    fs.mkdirSync(quiet);
    for (const f of QUIET_SOURCES) fs.copyFileSync(path.join(packageRoot(), 'lib', 'native', f), path.join(quiet, f));
    fs.writeFileSync(path.join(quiet, 'binding.gyp'), JSON.stringify(QUIET_GYP));
    nodeGyp(quiet, pre.nodeGyp, pre.nodeDir, [], logFile, 'the quiet loader');
    for (const [from, to] of [[path.join(work, 'package'), addonPackageDir(variant)], [quiet, path.join(native, 'quiet')]] as const) {
      fs.rmSync(to, { recursive: true, force: true });
      fs.renameSync(from, to);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const status: NativeStatus = { ok: true, variant, tensorflow: TENSORFLOW, tfjsNode: TFJS_NODE };
  writeStatus(status);
  const check = checkBuild();
  log(`checked: TensorFlow ${check.tensorflow} loads, matmul within ${check.maxDiff.toExponential(1)} of wasm`);
  if (variant === 'gpu' && !check.gpu) log('no CUDA GPU found here (driver libcuda.so.1 or device missing): TensorFlow runs on the CPU');
  return status;
}

/** Whether the built quiet addon was built from this package's sources (an update that changed them rebuilds). */
function quietAddonCurrent(): boolean {
  const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined);
  const sources = QUIET_SOURCES.every((f) => {
    const built = read(path.join(nativeDir(), 'quiet', f));
    return built !== undefined && built === read(path.join(packageRoot(), 'lib', 'native', f));
  });
  return sources && read(path.join(nativeDir(), 'quiet', 'binding.gyp')) === JSON.stringify(QUIET_GYP);
}

/** Builds (or keeps) the native backend and records the outcome in native/status.json; never throws for a missing
 *  prerequisite: the status says what is missing. */
export function setupNative(opts: SetupOptions): NativeStatus {
  const log = opts.log ?? ((l: string) => process.stderr.write(`glm46v setup: ${l}\n`));
  const prev = readStatus();
  const built = fs.existsSync(path.join(addonPackageDir(opts.variant), 'build', 'Release', 'tfjs_binding.node'));
  if (!opts.force && prev?.ok && prev.variant === opts.variant && prev.tensorflow === TENSORFLOW && built && quietAddonCurrent()) {
    return prev; // `--force` rebuilds
  }
  try {
    return build(opts, log);
  } catch (e) {
    if (!(e instanceof SetupError)) throw e;
    const status: NativeStatus = { ok: false, variant: opts.variant, reason: `native TensorFlow backend not built: ${e.message}` };
    // a working build of the other variant stays in use
    const keep = prev?.ok && prev.variant !== opts.variant && fs.existsSync(path.join(addonPackageDir(prev.variant), 'build', 'Release', 'tfjs_binding.node'));
    if (!keep) writeStatus(status);
    return status;
  }
}

/** Records that the user asked for no native backend (GLM46V_NATIVE=0): wasm without a word about it. */
export function optOutNative(): NativeStatus {
  const status: NativeStatus = { ok: false, variant: 'cpu', optedOut: true, reason: 'native backend turned off (GLM46V_NATIVE=0 at install)' };
  writeStatus(status);
  return status;
}
