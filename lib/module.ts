// Module base: a tree whose parameter names are exactly the checkpoint keys.
// Parameters are created on load (or by initWeights), so a checkpoint is never held twice in memory.
import * as tf from '@tensorflow/tfjs';

export type Init = 'normal' | 'zeros' | 'ones';

let variableCounter = 0;

/** One named weight of a module: its checkpoint shape, and the tf.Variable once loaded or initialised. */
export class Parameter {
  private v: tf.Variable | undefined;

  constructor(readonly shape: number[], readonly init: Init, readonly key: string) {}

  get value(): tf.Variable {
    if (!this.v) throw new Error(`parameter ${this.key} ${JSON.stringify(this.shape)} has not been loaded or initialised`);
    return this.v;
  }

  get isSet(): boolean {
    return this.v !== undefined;
  }

  /** Copies `t` into this parameter (creating its variable the first time). The caller keeps ownership of `t`. */
  set(t: tf.Tensor): void {
    if (!tf.util.arraysEqual(t.shape, this.shape)) {
      throw new Error(`${this.key}: expected ${JSON.stringify(this.shape)}, got ${JSON.stringify(t.shape)}`);
    }
    const x = t.dtype === 'float32' ? t : tf.cast(t, 'float32');
    if (this.v) this.v.assign(x);
    else this.v = tf.variable(x, true, `${this.key}#${variableCounter++}`);
    if (x !== t) x.dispose();
  }

  dispose(): void {
    this.v?.dispose();
    this.v = undefined;
  }
}

export abstract class Module {
  private readonly entries = new Map<string, Module | Parameter>();

  /** Registers a child module under its checkpoint key; returns it for field assignment. */
  protected register<T extends Module>(key: string, child: T): T {
    this.entries.set(key, child);
    return child;
  }

  /** Declares a parameter with its checkpoint key and shape ([out, in] for linears, as in PyTorch). */
  protected param(key: string, shape: number[], init: Init = 'normal'): Parameter {
    const p = new Parameter(shape, init, key);
    this.entries.set(key, p);
    return p;
  }

  /** Every parameter path under this module with its Parameter, a tied one under each of its paths. */
  private allParams(prefix: string, out: Array<[string, Parameter]>): Array<[string, Parameter]> {
    for (const [k, e] of this.entries) {
      if (e instanceof Parameter) out.push([prefix + k, e]);
      else e.allParams(prefix + k + '.', out);
    }
    return out;
  }

  /**
   * Every parameter under this module, keyed by its full checkpoint path. A parameter tied under several paths
   * (tie_word_embeddings) appears once, under the first path in registration order, as torch's named_parameters().
   */
  namedParams(prefix = ''): Map<string, Parameter> {
    const out = new Map<string, Parameter>();
    const seen = new Set<Parameter>();
    for (const [k, p] of this.allParams(prefix, [])) {
      if (!seen.has(p)) out.set(k, p);
      seen.add(p);
    }
    return out;
  }

  /** The paths that namedParams() leaves out because their parameter is tied to another path: alias -> that path. */
  tiedParams(prefix = ''): Map<string, string> {
    const first = new Map<Parameter, string>();
    const out = new Map<string, string>();
    for (const [k, p] of this.allParams(prefix, [])) {
      const source = first.get(p);
      if (source === undefined) first.set(p, k);
      else out.set(k, source);
    }
    return out;
  }

  /** The module holding the parameter at dotted `path`, the key in it and the parameter. */
  private paramAt(path: string): [Module, string, Parameter] {
    const i = path.lastIndexOf('.');
    const [modulePath, key] = i < 0 ? ['', path] : [path.slice(0, i), path.slice(i + 1)];
    const owner = this.namedModules().get(modulePath);
    const p = owner?.entries.get(key);
    if (!owner || !(p instanceof Parameter)) throw new Error(`no parameter '${path}'`);
    return [owner, key, p];
  }

  /** Points the parameter entry `key` of this module, and the fields that held it, at `p`. */
  private setParam(key: string, old: Parameter, p: Parameter): void {
    this.entries.set(key, p);
    for (const [name, v] of Object.entries(this)) if (v === old) (this as unknown as Record<string, unknown>)[name] = p;
  }

  /**
   * Ties the parameter at `alias` to the one at `source` (dotted paths under this module), as transformers'
   * tie_weights: both paths hold one Parameter, so one variable, one optimizer state, and a gradient that is the sum
   * of both uses. The alias's own parameter is released.
   */
  tie(alias: string, source: string): void {
    const [owner, key, old] = this.paramAt(alias);
    const p = this.paramAt(source)[2];
    if (!tf.util.arraysEqual(old.shape, p.shape)) {
      throw new Error(`cannot tie ${alias} ${JSON.stringify(old.shape)} to ${source} ${JSON.stringify(p.shape)}: shapes differ`);
    }
    if (old === p) return;
    owner.setParam(key, old, p);
    old.dispose();
  }

  /** Gives the tied path `alias` a parameter of its own again (not yet loaded or initialised). */
  untie(alias: string): void {
    const [owner, key, p] = this.paramAt(alias);
    if (this.allParams('', []).filter(([, q]) => q === p).length < 2) throw new Error(`${alias} is not tied to another parameter`);
    owner.setParam(key, p, new Parameter(p.shape, p.init, key));
  }

  /** The loaded variables keyed by checkpoint path: drives loading, LoRA targeting, optimizers and saving. */
  namedParameters(prefix = ''): Map<string, tf.Variable> {
    return new Map([...this.namedParams(prefix)].map(([k, p]) => [k, p.value]));
  }

  /** Every sub-module keyed by its module path ('' is this module). */
  namedModules(prefix = ''): Map<string, Module> {
    const out = new Map<string, Module>([[prefix.replace(/\.$/, ''), this]]);
    for (const [k, e] of this.entries) {
      if (e instanceof Module) for (const [kk, m] of e.namedModules(prefix + k + '.')) out.set(kk, m);
    }
    return out;
  }

  /**
   * Swaps the child registered under `key` for `child` (LoRA's layer swap) and returns the old one. Fields of this
   * module (and list items) that held the old child are pointed at the new one, so `forward` uses it.
   */
  replaceChild(key: string, child: Module): Module {
    const old = this.entries.get(key);
    if (!(old instanceof Module)) throw new Error(`no child module '${key}' to replace (has: ${[...this.entries.keys()].join(', ')})`);
    this.entries.set(key, child);
    for (const [name, v] of Object.entries(this)) {
      if (v === old) (this as unknown as Record<string, unknown>)[name] = child;
      else if (Array.isArray(v)) v.forEach((x, i) => x === old && (v[i] = child));
    }
    return old;
  }

  numParameters(): number {
    let n = 0;
    for (const p of this.namedParams().values()) n += p.shape.reduce((a, b) => a * b, 1);
    return n;
  }

  /**
   * Random initialisation as HF's `_init_weights`: normal(0, std) weights, zero biases, unit norm weights.
   * `seed` makes it reproducible.
   */
  initWeights(opts: { std?: number; seed?: number } = {}): this {
    const std = opts.std ?? 0.02;
    let seed = opts.seed ?? 0;
    for (const p of this.namedParams().values()) {
      const t = tf.tidy(() =>
        p.init === 'zeros' ? tf.zeros(p.shape) : p.init === 'ones' ? tf.ones(p.shape) : tf.randomNormal(p.shape, 0, std, 'float32', seed++),
      );
      p.set(t);
      t.dispose();
    }
    return this;
  }

  dispose(): void {
    for (const p of this.namedParams().values()) p.dispose();
  }
}

/** A numbered list of modules (`layers.0`, `layers.1`, ...), as torch.nn.ModuleList. */
export class ModuleList<T extends Module> extends Module implements Iterable<T> {
  readonly items: T[];

  constructor(items: T[]) {
    super();
    this.items = items.map((m, i) => this.register(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }

  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]();
  }
}

/** A module whose parameters are slices of fewer torch parameters (glm4v_moe's experts): each set is one of those. */
export interface HoldsFusedParameters {
  fusedParameters(prefix: string): string[][];
}
