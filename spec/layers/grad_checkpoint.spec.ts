import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { checkpoint } from '../../layers/grad_checkpoint';
import { loadModel } from '../../models/glm4v/auto';
import { referenceInputs } from '../../cli/parity_runner';
import { fixturePath, loadReference } from '../helpers/fixtures';

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

describe('checkpoint (activation recomputation)', () => {
  it('gives the gradients of the plain block for inputs and variables and leaks nothing', () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 1, 'float32', 1), true, 'ckpt_spec_w');
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 2);
    const c = tf.randomNormal([5, 3], 0, 1, 'float32', 3);
    const block = (xx: tf.Tensor, cc: tf.Tensor) => tf.mul(tf.tanh(tf.matMul(xx, w)), cc);
    const loss = (useCkpt: boolean) => (xx: tf.Tensor) => tf.sum(tf.square(useCkpt ? checkpoint(block, [xx], [c], [w]) : block(xx, c)));
    const grads = (useCkpt: boolean) => tf.tidy(() => {
      const gx = tf.grad(loss(useCkpt))(x);
      const { grads: gw } = tf.variableGrads(() => loss(useCkpt)(x) as tf.Scalar, [w]);
      return [gx, gw[w.name]!];
    });
    const [gx0, gw0] = grads(false);
    grads(true).forEach((g) => g.dispose());
    const before = tf.memory().numTensors;
    const [gx1, gw1] = grads(true);
    expect(tf.memory().numTensors).to.equal(before + 2);
    expect(maxDiff(gx0!, gx1!)).to.be.below(1e-6);
    expect(maxDiff(gw0!, gw1!)).to.be.below(1e-6);
    expect(maxDiff(gx0!, tf.zerosLike(gx0!))).to.be.above(0); // not trivially zero
    tf.dispose([gx0!, gw0!, gx1!, gw1!, x, c, w]);
  });
});

describe('Glm4vForConditionalGeneration.gradientCheckpointingEnable', () => {
  it('gives the same loss and gradients for every parameter (tiny_a, one image) and keeps the tensor count', () => {
    const ref = loadReference(fixturePath('model', 'tiny_a_image.safetensors'));
    const model = loadModel(ref.modelDir);
    const inputs = referenceInputs(ref.tensors);
    const vars = [...model.namedParameters().values()];
    const run = () => tf.variableGrads(() => model.forward(inputs).loss!, vars);
    const plain = run();
    model.gradientCheckpointingEnable();
    const first = run();
    tf.dispose([first.value, ...Object.values(first.grads)]);
    const before = tf.memory().numTensors;
    const ckpt = run();
    expect(tf.memory().numTensors).to.equal(before + 1 + vars.length);
    expect(maxDiff(plain.value, ckpt.value)).to.equal(0);
    let worst = 0;
    for (const v of vars) worst = Math.max(worst, maxDiff(plain.grads[v.name]!, ckpt.grads[v.name]!));
    expect(worst).to.be.below(1e-6);
    model.gradientCheckpointingDisable();
    tf.dispose([plain.value, ckpt.value, ...Object.values(plain.grads), ...Object.values(ckpt.grads), inputs.pixelValues!]);
    model.dispose();
  });
});
