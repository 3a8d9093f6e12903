// The direction of the package's imports: every import points down a floor, and no two files import each other
// through any chain. Floors: lib (the ground), layers, models and processors (side by side, never each other),
// generation, train, then server and cli on top, and web (the browser page) beside cli; scripts and research above the package, which imports neither.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.join(__dirname, '..');
const PACKAGE = ['lib', 'layers', 'models', 'processors', 'generation', 'train', 'server', 'cli'];

/** What each folder may import from (itself included). */
const ALLOWED: Record<string, string[]> = {
  lib: ['lib'],
  layers: ['lib', 'layers'],
  models: ['lib', 'layers', 'models'],
  processors: ['lib', 'processors'],
  generation: ['lib', 'layers', 'models', 'processors', 'generation'],
  train: ['lib', 'layers', 'models', 'processors', 'generation', 'train'],
  server: ['lib', 'layers', 'models', 'processors', 'generation', 'train', 'server'],
  cli: [...PACKAGE, 'index'],
  web: [...PACKAGE, 'index', 'web'],
  index: PACKAGE,
};

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const floor = (file: string) => {
  const rel = path.relative(ROOT, file);
  return rel === 'index.ts' ? 'index' : rel.split(path.sep)[0]!;
};

/** The relative imports of a file, resolved to files (`import`, `export ... from`, `require`, `import()`). */
function imports(file: string): string[] {
  const src = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of src.matchAll(/(?:\bfrom\s*|\brequire\(\s*|\bimport\(\s*|^import\s+)'(\.{1,2}\/[^']*)'/gm)) {
    const base = path.resolve(path.dirname(file), m[1]!);
    const hit = [`${base}.ts`, path.join(base, 'index.ts'), base].find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
    if (hit) out.push(hit);
  }
  return out;
}

const FILES = ['index.ts', ...PACKAGE, 'web', 'scripts', 'research'].flatMap((d) => {
  const p = path.join(ROOT, d);
  return !fs.existsSync(p) ? [] : fs.statSync(p).isDirectory() ? sources(p) : [p];
});

describe('structure: the direction of imports', () => {
  it('every package file imports only from its own floor or below, and never from scripts or research', () => {
    const wrong: string[] = [];
    for (const f of FILES) {
      const from = floor(f);
      const allowed = ALLOWED[from];
      if (!allowed) continue; // scripts and research sit on top
      for (const t of imports(f)) {
        if (!allowed.includes(floor(t))) wrong.push(`${path.relative(ROOT, f)} (${from}) imports ${path.relative(ROOT, t)} (${floor(t)})`);
      }
    }
    expect(wrong, wrong.join('\n')).to.deep.equal([]);
  });

  it('no file reaches itself through its imports (no cycles)', () => {
    const graph = new Map(FILES.map((f) => [f, imports(f)]));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, stack: string[]) => {
      state.set(f, 'open');
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => path.relative(ROOT, x)).join(' -> '));
        else if (!state.has(t)) visit(t, [...stack, t]);
      }
      state.set(f, 'done');
    };
    for (const f of FILES) if (!state.has(f)) visit(f, [f]);
    expect(cycles, cycles.join('\n')).to.deep.equal([]);
  });

  it('can fail: a folder that imports from above is caught', () => {
    const probe = path.join(ROOT, 'lib', 'structure_probe.tmp.ts');
    fs.writeFileSync(probe, "import { Linear } from '../layers/linear';\nexport const x = Linear;\n");
    try {
      expect(imports(probe).map((t) => floor(t))).to.deep.equal(['layers']);
      expect(ALLOWED.lib).to.not.include('layers');
    } finally {
      fs.rmSync(probe);
    }
  });
});
