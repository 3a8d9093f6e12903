import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { variableGradsFreeing } from '../../train/backward';
import { referenceInputs } from '../../cli/parity_runner';
import { loadModel } from '../../models/glm4v/auto';
import { fixturePath, loadReference } from '../helpers/fixtures';

type Grads = (f: () => tf.Scalar, vars: tf.Variable[]) => { value: tf.Scalar; grads: tf.NamedTensorMap };

async function bytesOf(t: tf.Tensor): Promise<Buffer> {
  const a = await t.data();
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

describe('variableGradsFreeing (a backward pass that frees as it goes)', () => {
  for (const checkpointing of [false, true]) {
    it(`tiny_a, left-padded batch of 2 with images${checkpointing ? ', decoder and vision checkpointed' : ''}: loss and every gradient bit-identical to tf.variableGrads`, async () => {
      const ref = loadReference(fixturePath('model', 'tiny_a_batch.safetensors'));
      const inputs = referenceInputs(ref.tensors);
      const model = loadModel(ref.modelDir);
      if (checkpointing) model.gradientCheckpointingEnable();
      const vars = [...model.namedParameters().values()];
      const run = async (grads: Grads) => {
        const before = tf.memory().numTensors;
        const { value, grads: g } = grads(() => model.forward(inputs).loss!, vars);
        const out = [await bytesOf(value), ...(await Promise.all(vars.map((v) => bytesOf(g[v.name]!))))];
        tf.dispose([value, ...Object.values(g)]);
        expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
        return out;
      };
      const [stock, freeing] = [await run(tf.variableGrads), await run(variableGradsFreeing)];
      expect(freeing[0]!.equals(stock[0]!), 'loss').to.equal(true);
      vars.forEach((v, i) => expect(freeing[i + 1]!.equals(stock[i + 1]!), v.name).to.equal(true));
      model.dispose();
      inputs.pixelValues!.dispose();
    });
  }

  it('holds far less during the backward pass: live bytes where the gradient reaches the first layer', () => {
    const x = tf.randomNormal([64, 256], 0, 1, 'float32', 1);
    const ws = Array.from({ length: 12 }, (_, i) => tf.variable(tf.randomNormal([256, 256], 0, 0.06, 'float32', i + 2)));
    let liveAtInput = 0;
    // identity whose gradient records the memory in use when the backward pass reaches the input
    const probe = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({ value: tf.clone(args[0] as tf.Tensor), gradFunc: (dy: tf.Tensor) => ((liveAtInput = tf.memory().numBytes), tf.clone(dy)) }));
    const loss = () => {
      let h = probe(tf.matMul(x, ws[0]!)) as tf.Tensor2D;
      for (const w of ws.slice(1)) h = tf.matMul(tf.tanh(h), w);
      return tf.sum(tf.square(h)) as tf.Scalar;
    };
    const measure = (grads: Grads) => {
      const base = tf.memory().numBytes;
      const { value, grads: g } = grads(loss, ws);
      const sums = ws.map((w) => g[w.name]!.sum().dataSync()[0]!);
      tf.dispose([value, ...Object.values(g)]);
      return { live: liveAtInput - base, sums };
    };
    const stock = measure(tf.variableGrads), freeing = measure(variableGradsFreeing);
    expect(freeing.sums).to.deep.equal(stock.sums);
    // both hold the 11 weight gradients above the first layer; the stock pass also every activation gradient and
    // every saved activation of the 12 layers (98 [64, 256] tensors measured), the freeing one 7
    const weightGrads = 11 * 256 * 256 * 4, act = 64 * 256 * 4;
    expect(stock.live).to.be.greaterThan(weightGrads + 60 * act);
    expect(freeing.live).to.be.lessThan(weightGrads + 10 * act);
    tf.dispose([x, ...ws]);
  });
});
