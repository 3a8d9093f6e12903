// Writes the built-in model's dataset (research/shapes/shapes_scene.ts) as chat-format JSONL for `glm46v finetune`:
//   npx tsx research/shapes/make_shapes.ts OUT_DIR [--train N] [--test N] [--val N] [--turns K]
// OUT_DIR/train.jsonl, OUT_DIR/test.jsonl and OUT_DIR/images/{train,test}_NNNNN.png (paths relative to the JSONL);
// with --val N also OUT_DIR/val.jsonl, a third held-out split in the test format for choosing between models without
// looking at the test questions. A test or val line is one image and one question. A training line is one image and
// up to K of the questions it answers (default 1), asked one after another in one chat; the first turn has exactly
// the test format. More turns give more answers per image, but later answers then follow from earlier ones without
// the image ("What colour is the circle?" red, "Which shape is red?"), and training learns that shortcut instead
// (README, the built-in model). Every example comes from its own seed (shapes_scene.splitExample), so the files are
// identical on every run and no two splits share a seed.
//   npx tsx research/shapes/make_shapes.ts --examples assets/examples
// writes the README's example images and examples.json (question and expected answer of each).
import * as fs from 'fs';
import * as path from 'path';
import { Example, Scene, Split, encodePng, place, questions, render, rng, shuffled, splitExample } from './shapes_scene';

interface Options {
  out: string;
  train: number;
  test: number;
  val: number;
  examples: boolean;
  turns: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { out: '', train: 5000, test: 200, val: 0, examples: false, turns: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--train' || a === '--test' || a === '--val' || a === '--turns') {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${a}: expected a non-negative integer, got ${argv[i]}`);
      o[a.slice(2) as 'train' | 'test' | 'val' | 'turns'] = n;
    } else if (a === '--examples') o.examples = true;
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (o.out) throw new Error(`one output folder expected, got ${o.out} and ${a}`);
    else o.out = a;
  }
  if (!o.out) throw new Error('usage: make_shapes.ts OUT_DIR [--train N] [--test N] [--val N] [--turns K] | --examples DIR');
  return o;
}

/** The image comes with the first question; each later question is a new user turn. */
function chatLine(image: string, exs: Example[]): string {
  return JSON.stringify({
    messages: exs.flatMap((ex, i) => [
      { role: 'user', content: i === 0 ? [{ type: 'image', image }, { type: 'text', text: ex.question }] : ex.question },
      { role: 'assistant', content: ex.answer },
    ]),
  });
}

function writeSplit(out: string, split: Split, n: number, turns: number): Record<string, number> {
  fs.mkdirSync(path.join(out, 'images'), { recursive: true });
  const lines: string[] = [];
  const kinds: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const { rand, scene, question: first } = splitExample(split, i);
    const rest = shuffled(questions(scene).filter((q) => q.question !== first.question), rand).slice(0, Math.max(0, turns - 1));
    const image = `images/${split}_${String(i).padStart(5, '0')}.png`;
    fs.writeFileSync(path.join(out, image), encodePng(render(scene)));
    lines.push(chatLine(image, [first, ...rest]));
    for (const ex of [first, ...rest]) kinds[ex.kind] = (kinds[ex.kind] ?? 0) + 1;
  }
  fs.writeFileSync(path.join(out, `${split}.jsonl`), lines.join('\n') + '\n');
  return kinds;
}

/** Hand-placed scenes for the README: one question of a different kind each. */
function writeExamples(out: string): void {
  const rand = rng(42);
  const items: { file: string; scene: Scene; question: string; answer: string }[] = [
    {
      file: 'shapes.png',
      scene: { shapes: [place('circle', 'red', 0, 0, rand), place('square', 'blue', 1, 3, rand), place('triangle', 'yellow', 3, 1, rand)] },
      question: 'What colour is the circle?',
      answer: 'red',
    },
    {
      file: 'count.png',
      scene: { shapes: [place('triangle', 'green', 0, 3, rand), place('circle', 'purple', 2, 1, rand)] },
      question: 'How many shapes are there?',
      answer: '2',
    },
    {
      file: 'position.png',
      scene: { shapes: [place('square', 'purple', 2, 0, rand), place('triangle', 'blue', 0, 2, rand)] },
      question: 'Is the square on the left or the right?',
      answer: 'left',
    },
  ];
  fs.mkdirSync(out, { recursive: true });
  for (const it of items) fs.writeFileSync(path.join(out, it.file), encodePng(render(it.scene)));
  const list = items.map(({ file, question, answer }) => ({ image: file, question, answer }));
  fs.writeFileSync(path.join(out, 'examples.json'), JSON.stringify(list, null, 2) + '\n');
  process.stdout.write(`examples: ${items.length} images in ${out}\n`);
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  if (o.examples) return writeExamples(o.out);
  const train = writeSplit(o.out, 'train', o.train, o.turns);
  const test = writeSplit(o.out, 'test', o.test, 1);
  process.stdout.write(`train: ${o.train} images, up to ${o.turns} questions each ${JSON.stringify(train)}\ntest: ${o.test} examples ${JSON.stringify(test)}\n`);
  if (o.val > 0) process.stdout.write(`val: ${o.val} examples ${JSON.stringify(writeSplit(o.out, 'val', o.val, 1))}\n`);
  process.stdout.write(`dataset: ${path.join(o.out, 'train.jsonl')} ${path.join(o.out, 'test.jsonl')}\n`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`make_shapes: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
