// Where a model's answers go wrong, by whether the question needs it to find "the square" among other shapes:
//   npx tsx research/shapes/eval.ts --model DIR --data OUT/val.jsonl --answers answers.jsonl
//   npx tsx research/shapes/binding_errors.ts answers.jsonl val
// The scenes are made again from the split's seeds (shapes_scene.splitExample; line N is example N - 1). A question
// that names a shape (its colour, its side) is counted in one of three groups (shapes_scene.bindingGroup): the image
// has that shape alone; it has others, but every shape would give the same answer; or the answer depends on which
// shape is meant (binding). For that last group it also counts the answers that are those the question would have about
// the image's first shape in reading order (shapes_scene.firstInRaster), whichever shape it names: a model that does
// not bind but reads the first shape it meets scores about as well there.
import * as fs from 'fs';
import { NamingKind, SPLIT_SEEDS, Split, answerAbout, bindingGroup, firstInRaster, splitExample } from './shapes_scene';

interface Answer {
  line: number;
  question: string;
  expected: string;
  got: string;
}

function main(): void {
  const [file, split] = process.argv.slice(2);
  if (!file || !split || !(split in SPLIT_SEEDS)) throw new Error(`usage: binding_errors.ts ANSWERS.jsonl ${Object.keys(SPLIT_SEEDS).join('|')}`);
  const table = new Map<string, [number, number, number]>(); // right, all, as about the first shape
  fs.readFileSync(file, 'utf8').split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    const a = JSON.parse(raw) as Answer;
    const { scene, question } = splitExample(split as Split, a.line - 1);
    if (question.question !== a.question || question.answer !== a.expected) {
      throw new Error(`${file}:${i + 1}: line ${a.line} asks "${a.question}" (${a.expected}), but ${split} example ${a.line - 1} is "${question.question}" (${question.answer})`);
    }
    const group = bindingGroup(question, scene);
    const key = `${question.kind.padEnd(11)} ${group ?? 'any'}`;
    const [ok, n, first] = table.get(key) ?? [0, 0, 0];
    const asFirst = group === 'several, binding' && a.got === answerAbout(question.kind as NamingKind, firstInRaster(scene));
    table.set(key, [ok + (a.got === a.expected ? 1 : 0), n + 1, first + (asFirst ? 1 : 0)]);
  });
  for (const [key, [ok, n, first]] of [...table].sort()) {
    const firstNote = key.endsWith('several, binding') ? `   as about the first shape: ${first}/${n}` : '';
    process.stdout.write(`${key.padEnd(34)} ${String(ok).padStart(4)}/${String(n).padEnd(4)} ${((100 * ok) / n).toFixed(1)}%${firstNote}\n`);
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`binding_errors: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
