// Exact-match accuracy of a model folder on a chat-format test.jsonl (research/shapes/make_shapes.ts):
//   npx tsx research/shapes/eval.ts --model DIR --data test.jsonl [--limit N] [--max-new-tokens N] [--show-wrong]
//                                [--answers FILE.jsonl]
// Each question goes through the same path as `glm46v generate`: the model's chat template with the generation
// prompt, the image processor, greedy decoding until an eos id; the answer (special tokens skipped, trimmed) must
// equal the reference answer exactly. Last line: `accuracy: N/T = X%`. --answers writes every question's answer
// ({line, question, expected, got} per line) for research/shapes/binding_errors.ts.
import * as fs from 'fs';
import * as path from 'path';
import { CliError, parseArgs } from '../../cli/args';
import { initBackend, shutdownBackend } from '../../lib/backend';
import { generate } from '../../generation/generate';
import { loadModel } from '../../models/glm4v/auto';
import type { ChatMessage, ContentPart } from '../../processors/chat_template';
import { loadImage, RgbImage } from '../../processors/image_io';
import { Glm46VImageProcessor } from '../../processors/image_processor';
import { asModelInputs, loadProcessor } from '../../processors/processor';
import { COLOURS, SHAPES } from './shapes_scene';

const USAGE = 'usage: eval.ts --model DIR --data FILE.jsonl [--limit N] [--max-new-tokens N] [--show-wrong] [--answers FILE.jsonl]';

interface TestItem {
  line: number;
  user: ChatMessage;
  answer: string;
}

/** The user turn (image paths made absolute) and the reference answer of each line. */
function readTest(file: string): TestItem[] {
  const dir = path.dirname(file);
  const items: TestItem[] = [];
  fs.readFileSync(file, 'utf8').split('\n').forEach((raw, i) => {
    if (!raw.trim()) return;
    const at = `${file}:${i + 1}`;
    const j = JSON.parse(raw) as { messages?: ChatMessage[] };
    const [user, assistant] = j.messages ?? [];
    if (user?.role !== 'user' || assistant?.role !== 'assistant' || typeof assistant.content !== 'string') {
      throw new Error(`${at}: expected a user turn then an assistant turn with a string answer`);
    }
    const content = Array.isArray(user.content)
      ? user.content.map((p: ContentPart) => (p.type === 'image' && typeof p.image === 'string' ? { ...p, image: path.resolve(dir, p.image) } : p))
      : user.content;
    items.push({ line: i + 1, user: { ...user, content }, answer: assistant.content.trim() });
  });
  return items;
}

const SCENE_WORDS = new RegExp(`\\b(${[...SHAPES, ...COLOURS].join('|')})\\b`, 'g');

const questionOf = (user: ChatMessage): string =>
  Array.isArray(user.content) ? user.content.find((p) => p.type === 'text')?.text ?? '' : String(user.content);

/** The question with its shape and colour words blanked ("What colour is the _?"): the accuracy per kind. */
const kindOf = (question: string): string => question.replace(SCENE_WORDS, '_');

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2), {
    model: { type: 'string', help: 'model folder (Hugging Face layout)' },
    data: { type: 'string', help: 'chat-format test JSONL' },
    limit: { type: 'number', help: 'only the first N questions' },
    'max-new-tokens': { type: 'number', help: 'longest answer in tokens (default 8)' },
    'show-wrong': { type: 'boolean', help: 'print every wrong answer to stderr' },
    answers: { type: 'string', help: 'write every answer here as JSONL' },
  }, USAGE);
  if (!args) return;
  if (typeof args.model !== 'string' || typeof args.data !== 'string') throw new CliError(USAGE);
  await initBackend({ quiet: true });
  const model = loadModel(args.model);
  const proc = loadProcessor<RgbImage>(args.model, Glm46VImageProcessor.fromPretrained(args.model));
  let items = readTest(args.data);
  if (typeof args.limit === 'number') items = items.slice(0, args.limit);
  const maxNewTokens = (args['max-new-tokens'] as number | undefined) ?? 8;

  const byKind = new Map<string, [number, number]>();
  const answers: string[] = [];
  let correct = 0;
  const t0 = Date.now();
  for (const [k, it] of items.entries()) {
    const user = {
      ...it.user,
      content: Array.isArray(it.user.content) ? it.user.content.map((p) => (p.type === 'image' ? { ...p, image: loadImage(p.image as string) } : p)) : it.user.content,
    };
    const enc = proc.applyChatTemplate([user], { addGenerationPrompt: true, enableThinking: false, tokenize: true }); // as `glm46v generate`
    const inputs = asModelInputs(enc);
    const seqs = await generate(model, inputs, { maxNewTokens, temperature: 0 });
    inputs.pixelValues?.dispose();
    const got = proc.postProcessImageTextToText([seqs[0]!.slice(enc.inputIds[0]!.length)])[0]!.trim();
    const ok = got === it.answer;
    correct += ok ? 1 : 0;
    const question = questionOf(it.user);
    const kind = kindOf(question);
    const [c, n] = byKind.get(kind) ?? [0, 0];
    byKind.set(kind, [c + (ok ? 1 : 0), n + 1]);
    answers.push(JSON.stringify({ line: it.line, question, expected: it.answer, got }));
    if (!ok && args['show-wrong']) process.stderr.write(`line ${it.line}: ${kind}... expected '${it.answer}', got '${got}'\n`);
    if ((k + 1) % 50 === 0) process.stderr.write(`eval: ${k + 1}/${items.length} (${((Date.now() - t0) / 1000).toFixed(0)}s)\n`);
  }
  model.dispose();
  if (typeof args.answers === 'string') fs.writeFileSync(args.answers, answers.join('\n') + '\n');
  for (const [kind, [c, n]] of [...byKind].sort()) process.stdout.write(`  ${kind.padEnd(40)} ${c}/${n}\n`);
  const pct = items.length ? (100 * correct) / items.length : 0;
  process.stdout.write(`accuracy: ${correct}/${items.length} = ${pct.toFixed(1)}%\n`);
}

main()
  .catch((e) => {
    process.stderr.write(`eval: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(shutdownBackend);
