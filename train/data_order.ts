// Which examples each micro-batch takes, as transformers' Trainer draws them: a seeded shuffle per epoch, resumable from
// (epoch, batch); and, for a curriculum's first stage, batches that are a function of the step alone.
import type { Example } from './data';
import { epochOrder, mixSeed } from './rng';

export class DataOrder {
  private order: number[];
  private firstOrder = { epoch: -1, order: [] as number[] }; // the current first-stage epoch's order, made once

  constructor(
    private readonly examples: Example[],
    private readonly first: Example[],
    private readonly batchSize: number,
    private readonly gradAccum: number,
    private readonly seed: number,
    /** where the main data stands: its epoch and the next batch in it (a checkpoint keeps both) */
    public epoch: number,
    public batch: number,
  ) {
    this.order = epochOrder(examples.length, seed, epoch);
  }

  get batchesPerEpoch(): number {
    return Math.ceil(this.examples.length / this.batchSize);
  }

  /** The next micro-batch of the main data, starting a new epoch (and its order) when one runs out. */
  next(): Example[] {
    if (this.batch >= this.batchesPerEpoch) {
      this.epoch += 1;
      this.batch = 0;
      this.order = epochOrder(this.examples.length, this.seed, this.epoch);
    }
    const idx = this.order.slice(this.batch * this.batchSize, (this.batch + 1) * this.batchSize);
    this.batch += 1;
    return idx.map((i) => this.examples[i]!);
  }

  /** Micro-batch `i` of first-stage step `step`: a function of the step alone, so resuming needs no extra state. */
  firstStage(step: number, i: number): Example[] {
    const perEpoch = Math.ceil(this.first.length / this.batchSize), k = step * this.gradAccum + i, epoch = Math.floor(k / perEpoch);
    if (this.firstOrder.epoch !== epoch) this.firstOrder = { epoch, order: epochOrder(this.first.length, mixSeed(this.seed, 1), epoch) };
    const at = k % perEpoch;
    return this.firstOrder.order.slice(at * this.batchSize, (at + 1) * this.batchSize).map((j) => this.first[j]!);
  }
}
