// Norm layers: RMSNorm (Glm4vRMSNorm) and torch.nn.LayerNorm, with checkpoint keys `weight` (and `bias`).
import * as tf from '@tensorflow/tfjs';
import { Module, Parameter } from '../lib/module';
import { layerNorm } from './ops/layer_norm';
import { rmsNorm } from './ops/rms_norm';

export class RMSNorm extends Module {
  readonly weight: Parameter;

  constructor(dim: number, readonly eps: number) {
    super();
    this.weight = this.param('weight', [dim], 'ones');
  }

  forward(x: tf.Tensor): tf.Tensor {
    return rmsNorm(x, this.weight.value, this.eps);
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;

  constructor(dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', [dim], 'ones');
    this.bias = this.param('bias', [dim], 'zeros');
  }

  forward(x: tf.Tensor): tf.Tensor {
    return layerNorm(x, this.weight.value, this.bias.value, this.eps);
  }
}
