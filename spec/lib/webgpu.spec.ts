// lib/webgpu.ts: Dawn's WebGPU in Node. Under GLM46V_BACKEND=webgpu, every op a GLM forward / backward relies on
// is run on webgpu and on cpu with the same inputs and compared; on other backends, setupWebGpu() must decline
// cleanly where no Vulkan driver exists, and the webgpu kernel registry must cover those ops.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { expectClose } from '../helpers/expect_close';

type In = number[] | { shape: number[]; ints: number } | { shape: number[]; values: number[]; dtype: 'float32' | 'int32' };

interface OpCase {
  name: string;
  inputs: In[];
  fn: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];
  /** also compare d(sum(out * w))/d(float inputs) */
  grad?: boolean;
  atol?: number;
}

const ints = (shape: number[], max: number): In => ({ shape, ints: max });
const rope = tf.customGrad(((...args: unknown[]) => {
  const [x, cos, sin, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
  save([cos, sin]);
  const half = (t: tf.Tensor) => tf.split(t, 2, -1);
  const [x1, x2] = half(x) as [tf.Tensor, tf.Tensor];
  const value = tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], -1), sin));
  const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
    const [c, s] = saved as [tf.Tensor, tf.Tensor];
    const [g1, g2] = half(tf.mul(dy, s)) as [tf.Tensor, tf.Tensor];
    return [tf.add(tf.mul(dy, c), tf.concat([g2, tf.neg(g1)], -1)), tf.zerosLike(c), tf.zerosLike(s)];
  };
  return { value, gradFunc };
}) as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor) => tf.Tensor;

/** The ops of a GLM-4.xV forward and LoRA backward, with the shapes' awkward cases (ragged, batched, broadcast). */
const CASES: OpCase[] = [
  { name: 'matMul', inputs: [[37, 53], [53, 29]], fn: (a, b) => tf.matMul(a!, b!), grad: true },
  { name: 'matMul transposeA', inputs: [[53, 37], [53, 29]], fn: (a, b) => tf.matMul(a!, b!, true, false), grad: true },
  { name: 'matMul transposeB (x W^T)', inputs: [[37, 53], [29, 53]], fn: (a, b) => tf.matMul(a!, b!, false, true), grad: true },
  { name: 'matMul transposeA+B', inputs: [[53, 37], [29, 53]], fn: (a, b) => tf.matMul(a!, b!, true, true), grad: true },
  { name: 'matMul large (tiled path)', inputs: [[130, 257], [257, 96]], fn: (a, b) => tf.matMul(a!, b!), atol: 1e-4 },
  { name: 'batched matMul 3D', inputs: [[3, 17, 40], [3, 40, 9]], fn: (a, b) => tf.matMul(a!, b!), grad: true },
  { name: 'batched matMul 4D q k^T', inputs: [[2, 4, 13, 16], [2, 4, 11, 16]], fn: (a, b) => tf.matMul(a!, b!, false, true), grad: true },
  { name: 'batched matMul 4D transposeA', inputs: [[2, 3, 16, 13], [2, 3, 16, 11]], fn: (a, b) => tf.matMul(a!, b!, true, false) },
  { name: 'batched matMul broadcast as [1, .., suffix]', inputs: [[2, 3, 4, 5], [3, 5, 6], [1, 3, 5, 6]], fn: (a, b, c) => [tf.matMul(a!, b!), tf.matMul(c!, a!, true, true)] },
  // tfjs's BatchMatMul (cpu, wasm and webgpu alike) is wrong when a side broadcasts other than as [1, .., suffix]:
  // [2,1]x[1,3] throws, [2,1]x[2,3] returns wrong values. lib/webgpu.ts fixes webgpu; the cpu reference tiles first.
  ...([[[2, 1, 4, 5], [1, 3, 6, 5]], [[2, 1, 4, 5], [2, 3, 6, 5]], [[2, 3, 4, 5], [2, 1, 6, 5]], [[3, 4, 5], [2, 1, 6, 5]]] as const)
    .map(([sa, sb]): OpCase => ({
      name: `batched matMul broadcast ${JSON.stringify(sa)} x ${JSON.stringify(sb)}^T`, inputs: [[...sa], [...sb]],
      fn: (a, b) => {
        const out = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
        const full = (x: tf.Tensor) => tf.broadcastTo(x, [...out, ...x.shape.slice(-2)]);
        const [a2, b2] = tf.getBackend() === 'cpu' ? [full(a!), full(b!)] : [a!, b!];
        return [tf.matMul(a2, b2, false, true), tf.matMul(b2, a2, false, true)];
      },
    })),
  { name: 'batched matMul 3D x 2D', inputs: [[2, 7, 16], [16, 24]], fn: (a, b) => tf.matMul(a!, b!) },
  { name: 'fused matMul bias + relu', inputs: [[9, 20], [20, 7], [7]], fn: (a, b, c) => tf.fused.matMul({ a: a!, b: b!, bias: c!, activation: 'relu' }), grad: true },
  { name: 'softmax', inputs: [[4, 3, 33]], fn: (x) => tf.softmax(tf.mul(x!, 8)), grad: true },
  {
    name: 'softmax with -1e9 mask', inputs: [[2, 9, 9]],
    fn: (x) => tf.softmax(tf.add(x!, tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([9, 9]), -1, 0)), -1e9))), grad: true,
  },
  // HF masks with finfo.min: a left-padding query row is masked entirely and must come out uniform, not NaN
  {
    name: 'softmax of fully finfo.min-masked rows', inputs: [[3, 2, 70]],
    fn: (x) => {
      const min = -3.4028234663852886e38;
      const keep = tf.tensor3d([1, 1, 0, 0, 1, 0], [3, 2, 1]);
      const masked = tf.where(tf.cast(keep, 'bool'), tf.add(x!, tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([2, 70]), 0, 30)), min)), tf.fill([3, 2, 70], min));
      const inf = tf.softmax(tf.concat([tf.fill([1, 5], -Infinity), tf.tensor2d([[0, -Infinity, 1, 2, -Infinity]])], 0));
      return [tf.softmax(masked), tf.cast(tf.isNaN(inf), 'int32'), tf.where(tf.isNaN(inf), tf.zerosLike(inf), inf)]; // all -inf: NaN
    },
  },
  { name: 'logSoftmax', inputs: [[5, 50]], fn: (x) => tf.logSoftmax(tf.mul(x!, 5)), grad: true },
  { name: 'logSumExp', inputs: [[5, 50]], fn: (x) => tf.logSumExp(tf.mul(x!, 5), -1), grad: true },
  { name: 'gather axis 0 (embedding)', inputs: [[50, 12], ints([2, 7], 50)], fn: (t, i) => tf.gather(t!, i!, 0) },
  { name: 'gather gradient (UnsortedSegmentSum)', inputs: [[50, 12], { shape: [9], values: [3, 7, 3, 0, 49, 7, 7, 12, 3], dtype: 'int32' }], fn: (t, i) => tf.gather(t!, i!, 0), grad: true },
  { name: 'gather axis 1', inputs: [[4, 30, 5], ints([6], 30)], fn: (t, i) => tf.gather(t!, i!, 1), grad: true },
  { name: 'erf / gelu (erf)', inputs: [[3, 40]], fn: (x) => [tf.erf(tf.mul(x!, 3)), tf.mul(tf.mul(x!, 0.5), tf.add(1, tf.erf(tf.mul(x!, Math.SQRT1_2))))], grad: true },
  { name: 'rsqrt / sqrt', inputs: [[3, 40]], fn: (x) => [tf.rsqrt(tf.add(tf.abs(x!), 1e-3)), tf.sqrt(tf.abs(x!))], grad: true },
  { name: 'silu / sigmoid / tanh', inputs: [[3, 40]], fn: (x) => [tf.mul(x!, tf.sigmoid(x!)), tf.tanh(tf.mul(x!, 4))], grad: true },
  { name: 'exp / log / pow / square', inputs: [[3, 40]], fn: (x) => [tf.exp(x!), tf.log(tf.add(tf.abs(x!), 0.1)), tf.pow(tf.abs(x!), 1.5), tf.square(x!)], grad: true },
  { name: 'sin / cos (rotary tables)', inputs: [[64]], fn: (x) => { const f = tf.outerProduct(tf.range(0, 40) as tf.Tensor1D, tf.mul(x!, 0.5) as tf.Tensor1D); return [tf.sin(f), tf.cos(f)]; } },
  { name: 'rotary via customGrad', inputs: [[2, 4, 6, 8], [6, 8], [6, 8]], fn: (x, c, s) => rope(x!, c!, s!), grad: true },
  { name: 'rmsNorm', inputs: [[2, 5, 32], [32]], fn: (x, w) => tf.mul(tf.mul(x!, tf.rsqrt(tf.add(tf.mean(tf.square(x!), -1, true), 1e-6))), w!), grad: true },
  {
    name: 'layerNorm (moments)', inputs: [[2, 5, 32], [32], [32]],
    fn: (x, w, b) => { const { mean, variance } = tf.moments(x!, -1, true); return tf.add(tf.mul(tf.div(tf.sub(x!, mean), tf.sqrt(tf.add(variance, 1e-5))), w!), b!); }, grad: true,
  },
  { name: 'add / sub / mul / div broadcast', inputs: [[3, 1, 8], [5, 8]], fn: (a, b) => [tf.add(a!, b!), tf.sub(a!, b!), tf.mul(a!, b!), tf.div(a!, tf.add(tf.abs(b!), 0.5))], grad: true },
  { name: 'maximum / minimum / clipByValue', inputs: [[4, 9], [4, 9]], fn: (a, b) => [tf.maximum(a!, b!), tf.minimum(a!, b!), tf.clipByValue(a!, -0.3, 0.4)] },
  { name: 'sum / mean / max / min over axes', inputs: [[3, 6, 70]], fn: (x) => [tf.sum(x!, -1), tf.mean(x!, 1), tf.max(x!, -1), tf.min(x!, 0), tf.sum(x!)], grad: true },
  { name: 'argMax (greedy sampling)', inputs: [[3, 1000]], fn: (x) => tf.argMax(x!, -1) },
  { name: 'topk values', inputs: [[2, 300]], fn: (x) => tf.topk(x!, 5).values },
  { name: 'concat last axis / axis 0, 3 inputs', inputs: [[2, 3, 5], [2, 3, 7], [2, 3, 1]], fn: (a, b, c) => [tf.concat([a!, b!, c!], -1), tf.concat([a!, a!], 0)], grad: true },
  { name: 'slice 3D / 4D', inputs: [[4, 10, 12], [2, 3, 8, 6]], fn: (a, b) => [tf.slice(a!, [1, 2, 3], [2, 5, -1]), tf.slice(b!, [0, 1, 2, 0], [2, 2, 5, 6])], grad: true },
  { name: 'split / stack / unstack', inputs: [[4, 12]], fn: (x) => [...tf.split(x!, [5, 7], 1), tf.stack(tf.unstack(x!, 0), 1)], grad: true },
  { name: 'transpose 3D / 4D / 5D', inputs: [[2, 3, 4, 5, 6]], fn: (x) => [tf.transpose(x!, [0, 2, 1, 3, 4]), tf.transpose(tf.reshape(x!, [6, 4, 5, 6]), [0, 2, 1, 3]), tf.transpose(tf.reshape(x!, [24, 5, 6]), [2, 0, 1])], grad: true },
  {
    name: 'patchify 9-D permute as reshapes', inputs: [[1, 2, 3, 4, 4]],
    fn: (x) => tf.transpose(tf.reshape(x!, [2, 3, 2, 2, 2, 2]), [0, 2, 4, 1, 3, 5]),
  },
  // tfjs-core has no Tile gradient above rank 4 (on every backend), so the gradient case stays 4-D as rotary.ts does
  { name: 'tile / broadcastTo / expandDims', inputs: [[2, 5, 8]], fn: (x) => [tf.tile(tf.expandDims(x!, -1), [1, 1, 1, 2]), tf.broadcastTo(tf.expandDims(x!, 1), [2, 3, 5, 8])], grad: true },
  { name: 'tile rank 5 (forward)', inputs: [[2, 2, 5, 8]], fn: (x) => tf.tile(tf.expandDims(x!, 2), [1, 1, 3, 1, 1]) },
  { name: 'pad', inputs: [[3, 4]], fn: (x) => tf.pad(x!, [[1, 0], [2, 3]]), grad: true },
  { name: 'where with comparisons', inputs: [[4, 20], [4, 20]], fn: (a, b) => tf.where(tf.logicalAnd(tf.greater(a!, 0), tf.lessEqual(b!, 0.5)), a!, tf.mul(b!, 2)), grad: true },
  { name: 'equal / notEqual / cast', inputs: [ints([30], 5), ints([30], 5)], fn: (a, b) => [tf.cast(tf.equal(a!, b!), 'int32'), tf.cast(tf.notEqual(a!, b!), 'float32'), tf.cast(tf.add(a!, b!), 'float32')] },
  { name: 'int32 arithmetic (index math)', inputs: [ints([20], 100)], fn: (i) => [tf.add(tf.mul(i!, tf.scalar(3, 'int32')), tf.scalar(7, 'int32')), tf.floorDiv(i!, tf.scalar(4, 'int32')), tf.mod(i!, tf.scalar(7, 'int32'))] },
  { name: 'range / oneHot / cumsum', inputs: [ints([7], 10)], fn: (i) => [tf.range(0, 17, 3), tf.oneHot(i!, 10), tf.cumsum(tf.cast(i!, 'float32')), tf.cumsum(tf.cast(i!, 'float32'), 0, true, true)] },
  { name: 'softmax cross-entropy (oneHot)', inputs: [[6, 40], ints([6], 40)], fn: (x, y) => tf.losses.softmaxCrossEntropy(tf.oneHot(y!, 40), x!), grad: true },
  { name: 'conv2d (vision downsample) + weight grad', inputs: [[1, 6, 6, 8], [2, 2, 8, 5]], fn: (x, w) => tf.conv2d(x! as tf.Tensor4D, w! as tf.Tensor4D, 2, 'valid'), grad: true },
  { name: 'resizeBilinear', inputs: [[1, 5, 7, 3]], fn: (x) => tf.image.resizeBilinear(x! as tf.Tensor4D, [9, 4]) },
  // the cpu ResizeBilinearGrad returns [1, w, h, c] for h != w, so the reference for the gradient is square
  { name: 'resizeBilinear square', inputs: [[1, 6, 6, 3]], fn: (x) => tf.image.resizeBilinear(x! as tf.Tensor4D, [9, 4]), grad: true },
  { name: 'softmax / sum / argMax on long rows', inputs: [[2, 4099]], fn: (x) => [tf.softmax(tf.mul(x!, 6)), tf.sum(x!, -1), tf.max(x!, -1), tf.argMax(x!, -1), tf.logSumExp(x!, -1)], grad: true, atol: 1e-4 },
  { name: 'reductions over middle / all axes, large', inputs: [[7, 513, 9]], fn: (x) => [tf.sum(x!, 1), tf.mean(x!, [0, 2]), tf.max(x!, 1), tf.min(x!), tf.prod(tf.add(tf.mul(x!, 0.01), 1), 1)], atol: 1e-4 },
  { name: 'stridedSlice / reverse / mirrorPad', inputs: [[4, 9, 6]], fn: (x) => [tf.stridedSlice(x!, [0, 1, 0], [4, 9, 6], [2, 3, 1]), tf.reverse(x!, [1, 2]), tf.mirrorPad(x!, [[0, 0], [1, 2], [2, 0]], 'reflect')] },
  { name: 'gatherND / scatterND / unsortedSegmentSum', inputs: [[5, 6, 3], { shape: [4, 2], values: [0, 1, 4, 5, 2, 2, 0, 1], dtype: 'int32' }, [4, 3]], fn: (x, i, u) => [tf.gatherND(x!, i!), tf.scatterND(i!, u!, [5, 6, 3]), tf.unsortedSegmentSum(u!, tf.tensor1d([2, 0, 2, 1], 'int32'), 3)] },
  { name: 'einsum (attention form)', inputs: [[2, 5, 8], [2, 7, 8]], fn: (q, k) => tf.einsum('bld,bsd->bls', q!, k!) },
  { name: 'floor / round / sign / reciprocal / log1p / softplus', inputs: [[5, 9]], fn: (x) => { const y = tf.mul(x!, 3.3); return [tf.floor(y), tf.round(y), tf.sign(y), tf.reciprocal(tf.add(tf.abs(y), 0.2)), tf.log1p(tf.abs(y)), tf.softplus(y)]; } },
  { name: 'less / greaterEqual / logicalNot / any / all / cast float->int (truncation)', inputs: [[4, 7]], fn: (x) => { const y = tf.mul(x!, 4.5); return [tf.cast(tf.less(y, 0.5), 'int32'), tf.cast(tf.greaterEqual(y, 0), 'int32'), tf.cast(tf.logicalNot(tf.greater(y, 1)), 'int32'), tf.cast(tf.any(tf.greater(y, 3), 1), 'int32'), tf.cast(tf.all(tf.greater(y, -4), 1), 'int32'), tf.cast(y, 'int32')]; } },
  { name: 'squaredDifference / elu / leakyRelu / relu6 / gelu(tanh)', inputs: [[3, 11], [3, 11]], fn: (a, b) => { const y = tf.mul(a!, 3); return [tf.squaredDifference(a!, b!), tf.elu(y), tf.leakyRelu(y, 0.1), tf.relu6(tf.mul(y, 3)), tf.mul(tf.mul(y, 0.5), tf.add(1, tf.tanh(tf.mul(Math.sqrt(2 / Math.PI), tf.add(y, tf.mul(0.044715, tf.pow(y, 3)))))))]; }, grad: true },
];

/** Kernels behind CASES plus those the model files call; each must be registered for webgpu. */
const TRANSFORMER_KERNELS = [
  'BatchMatMul', '_FusedMatMul', 'Softmax', 'GatherV2', 'UnsortedSegmentSum', 'Erf', 'Rsqrt', 'Sqrt', 'Sigmoid', 'Tanh',
  'Exp', 'Log', 'Pow', 'Square', 'Sin', 'Cos', 'Add', 'Sub', 'Multiply', 'RealDiv', 'Maximum', 'Minimum', 'Sum', 'Mean',
  'Max', 'Min', 'ArgMax', 'TopK', 'Concat', 'Slice', 'SplitV', 'Pack', 'Unpack', 'Transpose', 'Reshape', 'Tile',
  'ExpandDims', 'PadV2', 'Select', 'Greater', 'LessEqual', 'LogicalAnd', 'Equal', 'NotEqual', 'Cast',
  'Range', 'OneHot', 'Cumsum', 'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'ResizeBilinear',
  'ResizeBilinearGrad', 'Neg', 'Abs', 'ClipByValue', 'FloorDiv', 'Mod', 'Fill', 'ZerosLike', 'OnesLike', 'Step', 'Relu',
];

/** Deterministic floats in [-1, 1) or ints in [0, max), so both backends see identical inputs. */
function make(spec: In, seed: number): tf.Tensor {
  if (!Array.isArray(spec) && 'values' in spec) return tf.tensor(spec.values, spec.shape, spec.dtype);
  const shape = Array.isArray(spec) ? spec : spec.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  let s = (seed * 2654435761) >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  if (Array.isArray(spec)) return tf.tensor(Float32Array.from({ length: n }, () => next() * 2 - 1), shape);
  return tf.tensor(Int32Array.from({ length: n }, () => Math.floor(next() * spec.ints)), shape, 'int32');
}

interface Result { label: string; shape: number[]; values: Float32Array | Int32Array | Uint8Array }

/** Runs a case on one backend: its outputs, then (grad) d(sum_k out_k * w_k)/d(each float input). */
async function runOn(backend: string, c: OpCase): Promise<Result[]> {
  await tf.setBackend(backend);
  const tensors = tf.tidy(() => {
    const xs = c.inputs.map((spec, i) => make(spec, i + 1));
    const outs = ([] as tf.Tensor[]).concat(c.fn(...xs));
    const labelled = outs.map((t, k) => ({ label: `out${k}`, t }));
    if (!c.grad) return labelled;
    const floats = xs.map((x, i) => (x.dtype === 'float32' ? i : -1)).filter((i) => i >= 0);
    const loss = (...fs: tf.Tensor[]) => {
      const args = xs.map((x, i) => (floats.includes(i) ? fs[floats.indexOf(i)]! : x));
      const ys = ([] as tf.Tensor[]).concat(c.fn(...args));
      return tf.addN(ys.map((y, k) => tf.sum(tf.mul(y, make(y.shape, 100 + k)))));
    };
    const grads = tf.grads(loss)(floats.map((i) => xs[i]!));
    return [...labelled, ...grads.map((g, k) => ({ label: `grad of input ${floats[k]}`, t: g }))];
  });
  const out: Result[] = [];
  for (const { label, t } of tensors) out.push({ label, shape: t.shape, values: (await t.data()) as Result['values'] });
  tf.dispose(tensors.map((r) => r.t));
  return out;
}

function runSetupInChild(env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const code = `require('./lib/webgpu').setupWebGpu({ quiet: true })
    .then((ok) => { console.log(JSON.stringify({ ok, why: require('./lib/webgpu').webGpuFailure() ?? null })); })
    .catch((e) => { console.log(JSON.stringify({ threw: String(e) })); });`;
  const root = path.resolve(__dirname, '../..');
  const r = spawnSync(process.execPath, ['-r', 'tsx/cjs', '-e', code], { cwd: root, env, encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('lib/webgpu', function () {
  this.timeout(120000);

  it('has a webgpu kernel for every kernel a GLM forward / LoRA backward uses', function () {
    const have = new Set(tf.getKernelsForBackend('webgpu').map((k) => k.kernelName));
    expect(TRANSFORMER_KERNELS.filter((k) => !have.has(k))).to.deep.equal([]);
  });

  if (process.env.GLM46V_BACKEND === 'webgpu') {
    const cpuForward = tf.env().getBool('WEBGPU_CPU_FORWARD');
    before(function () {
      expect(tf.getBackend(), 'GLM46V_BACKEND=webgpu but the active backend is').to.equal('webgpu');
      // Small inputs would otherwise run on the cpu kernels (WEBGPU_CPU_FORWARD), hiding the GPU ones.
      tf.env().set('WEBGPU_CPU_FORWARD', false);
    });
    after(async function () {
      tf.env().set('WEBGPU_CPU_FORWARD', cpuForward);
      await tf.setBackend('webgpu');
    });

    for (const c of CASES) {
      it(`${c.name}${c.grad ? ' (+ grads)' : ''} equals cpu`, async function () {
        const want = await runOn('cpu', c);
        const got = await runOn('webgpu', c);
        expect(got.map((r) => r.label)).to.deep.equal(want.map((r) => r.label));
        got.forEach((g, i) => {
          const label = `${c.name} ${g.label}`;
          expect(g.shape, label).to.deep.equal(want[i]!.shape);
          expectClose(g.values, want[i]!.values, { atol: c.atol ?? 2e-5, rtol: 2e-5, label });
        });
      });
    }

    it('reads GPU tensors asynchronously; dataSync says to use data() instead of failing on OffscreenCanvas', async function () {
      await tf.setBackend('webgpu');
      const host = tf.tensor1d([1, 2, 3]);
      expect(Array.from(host.dataSync())).to.deep.equal([1, 2, 3]); // still on the host: no GPU read needed
      const y = tf.mul(host, 2);
      expect(() => y.dataSync()).to.throw(/cannot read a GPU tensor synchronously.*await t\.data\(\)/);
      expect(Array.from(await y.data())).to.deep.equal([2, 4, 6]);
      expect(Array.from(y.dataSync())).to.deep.equal([2, 4, 6]); // data() left a host copy
      tf.dispose([host, y]);
    });

    it('leaks no tensors or GPU data across repeated cases (broadcast matMul fix included)', async function () {
      const cases = CASES.filter((c) => c.name.startsWith('batched matMul') || c.grad).slice(0, 12);
      await tf.setBackend('webgpu');
      const count = () => [tf.memory().numTensors, tf.backend().numDataIds()];
      const before = count();
      for (const c of cases) await runOn('webgpu', c);
      expect(count()).to.deep.equal(before);
    });
  } else {
    it('setupWebGpu() returns false with a one-line reason when no Vulkan driver is usable', function () {
      const env = { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };
      const r = runSetupInChild(env);
      expect(r.status, `child exited ${r.status}: ${r.stderr}`).to.equal(0);
      const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok?: boolean; why?: string; threw?: string };
      expect(res.threw, 'setupWebGpu threw').to.equal(undefined);
      expect(res.ok).to.equal(false);
      expect(res.why).to.match(/^webgpu: .*(not installed|Vulkan)/);
      expect(res.why).to.not.include('\n');
    });
  }
});
