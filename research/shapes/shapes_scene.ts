// The synthetic visual task of the built-in model: one to three coloured shapes on a plain grey background, and one
// question per image whose answer is a single word or digit. Scenes, questions and pixels are pure functions of a seed.
import { PNG } from 'pngjs';
import { mulberry32 as rng } from '../../lib/rng';

export { rng };

export const IMAGE_SIZE = 112;
export const SHAPES = ['circle', 'square', 'triangle'] as const;
export const COLOURS = ['red', 'green', 'blue', 'yellow', 'purple'] as const;

export type ShapeName = (typeof SHAPES)[number];
export type ColourName = (typeof COLOURS)[number];

// Far apart in RGB, so a colour is never a matter of judgement.
const RGB: Record<ColourName, [number, number, number]> = {
  red: [220, 30, 30],
  green: [30, 160, 50],
  blue: [30, 70, 220],
  yellow: [235, 205, 20],
  purple: [140, 50, 180],
};
// The processor's image_mean (OpenAI CLIP) as a colour: the background normalises to ~0, so the patches carry the
// shapes alone. On white (+2 after normalisation) every patch shared a large constant and training learned to ignore it.
const BACKGROUND: [number, number, number] = [123, 117, 104];

/**
 * A shape sits in one cell of a 4 x 4 grid of 28 px cells (row 0 = top, col 0 = left), jittered a little inside it.
 * 28 px is one image token of the model (14 px patches merged 2 x 2), so each shape is seen whole by one token, and
 * every shape is plainly in the left or right (top or bottom) half.
 */
export interface PlacedShape {
  shape: ShapeName;
  colour: ColourName;
  row: number;
  col: number;
  /** centre in pixels and half-size (circle radius) */
  cx: number;
  cy: number;
  r: number;
}

export interface Scene {
  shapes: PlacedShape[];
}

export interface Example {
  question: string;
  answer: string;
  kind: 'colour' | 'shape' | 'count' | 'horizontal' | 'vertical';
}


const pick = <T>(xs: readonly T[], rand: () => number): T => xs[Math.floor(rand() * xs.length)]!;

export function shuffled<T>(xs: readonly T[], rand: () => number): T[] {
  const out = xs.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

export const GRID = 4;
const CELL = IMAGE_SIZE / GRID;

/** Places a shape in a cell: half-size 8.5..10.5 px, centre jittered by up to 1.5 px, so it never leaves its cell. */
export function place(shape: ShapeName, colour: ColourName, row: number, col: number, rand: () => number): PlacedShape {
  const r = 8.5 + rand() * 2;
  const jitter = () => (rand() * 2 - 1) * 1.5;
  return { shape, colour, row, col, cx: (col + 0.5) * CELL + jitter(), cy: (row + 0.5) * CELL + jitter(), r };
}

/**
 * One to three shapes of different kinds (so "the circle" always names one shape) in different cells; colours may
 * repeat (so a colour does not name a shape unless it is unique).
 */
export function sampleScene(rand: () => number): Scene {
  const n = 1 + Math.floor(rand() * 3);
  const kinds = shuffled(SHAPES, rand).slice(0, n);
  const cells = shuffled(Array.from({ length: GRID * GRID }, (_, i) => i), rand).slice(0, n);
  return { shapes: kinds.map((k, i) => place(k, pick(COLOURS, rand), Math.floor(cells[i]! / GRID), cells[i]! % GRID, rand)) };
}

/** Every question the scene answers without ambiguity: colour of a shape, shape of a colour seen once, the count, sides. */
export function questions(scene: Scene): Example[] {
  const out: Example[] = [];
  const s = scene.shapes;
  for (const p of s) out.push({ kind: 'colour', question: `What colour is the ${p.shape}?`, answer: p.colour });
  for (const p of s) {
    if (s.filter((q) => q.colour === p.colour).length === 1) out.push({ kind: 'shape', question: `Which shape is ${p.colour}?`, answer: p.shape });
  }
  // a digit: one token of the tiny tokenizer, where 'two' and 'three' share their first token
  out.push({ kind: 'count', question: 'How many shapes are there?', answer: String(s.length) });
  for (const p of s) {
    out.push({ kind: 'horizontal', question: `Is the ${p.shape} on the left or the right?`, answer: p.col < GRID / 2 ? 'left' : 'right' });
    out.push({ kind: 'vertical', question: `Is the ${p.shape} at the top or the bottom?`, answer: p.row < GRID / 2 ? 'top' : 'bottom' });
  }
  return out;
}

/** A question kind drawn uniformly among those the scene allows, then one question of that kind. */
export function sampleQuestion(scene: Scene, rand: () => number): Example {
  const all = questions(scene);
  const kinds = [...new Set(all.map((q) => q.kind))];
  const kind = pick(kinds, rand);
  return pick(all.filter((q) => q.kind === kind), rand);
}

/**
 * Each example's scene and first question come from its own seed (the split's offset + its index), so every split is
 * the same on every run and no two splits share a seed. `rand` goes on to draw the example's further questions.
 */
export const SPLIT_SEEDS = { train: 1_000_000, val: 5_000_000, test: 9_000_000 };
export type Split = keyof typeof SPLIT_SEEDS;

export function splitExample(split: Split, index: number): { rand: () => number; scene: Scene; question: Example } {
  const rand = rng(SPLIT_SEEDS[split] + index);
  const scene = sampleScene(rand);
  return { rand, scene, question: sampleQuestion(scene, rand) };
}

/** How a question that names a shape (its colour, its side) relates to the scene's other shapes. */
export type BindingGroup = 'one shape' | 'several, same answer' | 'several, binding';

/**
 * 'several, binding' when the answer depends on which of the scene's shapes the question names, so the model must
 * find "the square" among the others; undefined for the kinds that name no shape (count, shape of a colour).
 */
export function bindingGroup(ex: Example, scene: Scene): BindingGroup | undefined {
  const kind = ex.kind;
  if (kind === 'count' || kind === 'shape') return undefined;
  const named = scene.shapes.find((p) => ex.question.includes(`the ${p.shape}`));
  if (!named) throw new Error(`no shape of the scene is named in "${ex.question}"`);
  if (scene.shapes.length === 1) return 'one shape';
  const answer = answerAbout(kind, named);
  return scene.shapes.every((p) => answerAbout(kind, p) === answer) ? 'several, same answer' : 'several, binding';
}

/** The kinds of question that name a shape. */
export type NamingKind = Exclude<Example['kind'], 'count' | 'shape'>;

/** The answer to a question of this kind about shape p. */
export function answerAbout(kind: NamingKind, p: PlacedShape): string {
  return questions({ shapes: [p] }).find((q) => q.kind === kind)!.answer;
}

/** The scene's first shape in reading order (top row first, then left to right), as the image tokens come. */
export function firstInRaster(scene: Scene): PlacedShape {
  return scene.shapes.reduce((a, b) => (b.row * GRID + b.col < a.row * GRID + a.col ? b : a));
}

/** True when the point (x, y) lies inside the shape. */
function inside(p: PlacedShape, x: number, y: number): boolean {
  const dx = x - p.cx, dy = y - p.cy;
  if (p.shape === 'circle') return dx * dx + dy * dy <= p.r * p.r;
  // a square of about the circle's area: half-side 0.88 r
  if (p.shape === 'square') return Math.abs(dx) <= 0.88 * p.r && Math.abs(dy) <= 0.88 * p.r;
  // an upright triangle: apex at -1.1 r, base at +0.9 r, base half-width 1.15 r
  const top = -1.1 * p.r, base = 0.9 * p.r;
  if (dy < top || dy > base) return false;
  return Math.abs(dx) <= (1.15 * p.r * (dy - top)) / (base - top);
}

/** RGBA pixels of the scene, 4 x 4 supersampled so the edges are anti-aliased as a drawing program would. */
export function render(scene: Scene, size = IMAGE_SIZE): PNG {
  const png = new PNG({ width: size, height: size });
  const S = 4;
  // every shape lies within 1.2 r of its centre; pixels outside all those boxes are plain background
  const near = (x: number, y: number) => scene.shapes.some((p) => Math.abs(x + 0.5 - p.cx) < 1.2 * p.r + 1 && Math.abs(y + 0.5 - p.cy) < 1.2 * p.r + 1);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 4;
      png.data[o + 3] = 255;
      if (!near(x, y)) {
        for (let k = 0; k < 3; k++) png.data[o + k] = BACKGROUND[k]!;
        continue;
      }
      const acc = [0, 0, 0];
      for (let sy = 0; sy < S; sy++) {
        for (let sx = 0; sx < S; sx++) {
          const px = x + (sx + 0.5) / S, py = y + (sy + 0.5) / S;
          const hit = scene.shapes.find((p) => inside(p, px, py));
          const c = hit ? RGB[hit.colour] : BACKGROUND;
          for (let k = 0; k < 3; k++) acc[k]! += c[k]!;
        }
      }
      for (let k = 0; k < 3; k++) png.data[o + k] = Math.round(acc[k]! / (S * S));
    }
  }
  return png;
}

export function encodePng(png: PNG): Buffer {
  return PNG.sync.write(png);
}
