// Learning-rate schedules as transformers' optimization.py: multipliers of the base lr, indexed like LambdaLR's
// last_epoch (optimizer step k, counted from 0, runs with lr = base * factor(k)).

export type LrLambda = (step: number) => number;

export interface WarmupCosineOptions {
  warmupSteps: number;
  totalSteps: number;
  /** number of cosine waves over the decay (0.5: from 1 down to 0 once) */
  numCycles?: number;
  /** floor of the decay as a fraction of the base lr (get_cosine_with_min_lr_schedule_with_warmup) */
  minLrRate?: number;
}

/** get_cosine_schedule_with_warmup: linear 0 -> 1 over the warmup, then a cosine down to minLrRate. */
export function cosineWithWarmup(opts: WarmupCosineOptions): LrLambda {
  const { warmupSteps, totalSteps } = opts;
  const numCycles = opts.numCycles ?? 0.5;
  const minLrRate = opts.minLrRate ?? 0;
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0) throw new Error(`warmup steps must be an integer >= 0, got ${warmupSteps}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new Error(`total steps must be an integer >= 1, got ${totalSteps}`);
  return (step) => {
    if (step < warmupSteps) return step / Math.max(1, warmupSteps);
    const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
    const factor = 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress));
    return Math.max(0, factor * (1 - minLrRate) + minLrRate);
  };
}

/** get_constant_schedule_with_warmup */
export function constantWithWarmup(warmupSteps: number): LrLambda {
  return (step) => (step < warmupSteps ? step / Math.max(1, warmupSteps) : 1);
}
