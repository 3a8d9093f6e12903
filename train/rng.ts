// Data order for training: a seeded permutation per epoch, a pure function of (seed, epoch), so resuming needs only
// the position (epoch, batch) and never a generator's hidden state.
import { mixSeed, splitmix32 } from '../lib/rng';

export { mixSeed, splitmix32 };

/** Fisher-Yates permutation of [0, n) for `epoch` of a run seeded with `seed`. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const rand = splitmix32(mixSeed(seed, epoch));
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}
