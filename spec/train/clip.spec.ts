import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import { clipGradNorm } from '../../train/clip';
import { expectCloseAsync } from '../helpers/expect_close';

describe('clipGradNorm (torch.nn.utils.clip_grad_norm_)', () => {
  it('scales every gradient by max_norm / (norm + 1e-6) when the global norm is larger', async () => {
    // norms 5 and 12 -> global 13
    const grads = new Map([['a', tf.tensor([3, 4])], ['b', tf.tensor([[12]])]]);
    const { grads: out, totalNorm } = clipGradNorm(grads, 1);
    expect((await totalNorm.data())[0]).to.be.closeTo(13, 1e-6);
    const s = 1 / (13 + 1e-6);
    await expectCloseAsync(out.get('a')!, [3 * s, 4 * s], { atol: 1e-7 });
    await expectCloseAsync(out.get('b')!, [12 * s], { atol: 1e-7 });
    expect(out.get('b')!.shape).to.deep.equal([1, 1]);
    tf.dispose([...grads.values(), ...out.values(), totalNorm]);
  });

  it('leaves gradients whose norm is below max_norm as they are (factor clamped to 1)', async () => {
    const grads = new Map([['a', tf.tensor([0.3, 0.4])]]);
    const { grads: out, totalNorm } = clipGradNorm(grads, 1);
    expect(Array.from(await out.get('a')!.data())).to.deep.equal(Array.from(Float32Array.from([0.3, 0.4])));
    tf.dispose([...grads.values(), ...out.values(), totalNorm]);
  });

  it('keeps no tensor beyond what it returns', () => {
    const grads = new Map([['a', tf.tensor([3, 4])], ['b', tf.tensor([1])]]);
    const before = tf.memory().numTensors;
    const { grads: out, totalNorm } = clipGradNorm(grads, 0.5);
    expect(tf.memory().numTensors).to.equal(before + 3);
    tf.dispose([...grads.values(), ...out.values(), totalNorm]);
  });

  it('rejects a max norm that is not positive', () => {
    expect(() => clipGradNorm(new Map(), 0)).to.throw('max grad norm must be > 0, got 0');
  });
});
