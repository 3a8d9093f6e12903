// Chat-format JSONL -> labelled token rows and padded batches for causal-LM fine-tuning.
// One example a line: {"messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"},
// {"type": "text", "text": "..."}]}, {"role": "assistant", "content": "..."}]}, image paths relative to the file.
// Rows are what the processor gives for the rendered chat (template, image placeholders expanded); labels are -100
// everywhere but on the assistant's tokens (prompt, image placeholders and padding are never learned).
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { CausalLmInputs } from '../models/glm4v/model';
import type { ChatMessage } from '../processors/chat_template';
import { loadImage, RgbImage } from '../processors/image_io';
import { Glm4vProcessor, loadProcessor } from '../processors/processor';
import { IGNORE_INDEX } from '../layers/loss';

export class DataError extends Error {
  override name = 'DataError';
}

export interface DataOptions {
  /** longest row in tokens (image placeholders included); longer examples are skipped or rejected */
  maxLength?: number;
  onTooLong?: 'skip' | 'error';
  /** 'assistant': learn only the assistant turns (default); 'all': every token but image placeholders and padding */
  trainOn?: 'assistant' | 'all';
  /** append the tokenizer's eos token, labelled, after a conversation that ends with the assistant (default true) */
  appendEos?: boolean;
}

export interface Example {
  /** 1-based line in the JSONL file */
  line: number;
  inputIds: number[];
  labels: number[];
  /** absolute image paths in placeholder order */
  images: string[];
  imageGridThw: number[][];
}

export interface LoadedData {
  file: string;
  examples: Example[];
  /** examples left out because they were longer than maxLength */
  skipped: { line: number; tokens: number }[];
}

export interface Batch {
  inputs: CausalLmInputs & { inputIds: number[][]; attentionMask: number[][]; labels: number[][] };
  /** non-padding tokens */
  numTokens: number;
  lines: number[];
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

export class ChatDataset {
  constructor(
    readonly processor: Glm4vProcessor<RgbImage>,
    readonly opts: DataOptions = {},
  ) {
    if (!processor.imageProcessor) throw new DataError('ChatDataset: the processor has no image processor');
  }

  /** The processor of a model folder (tokenizer, chat template, image processor), as AutoProcessor picks it. */
  static fromPretrained(dir: string, opts: DataOptions = {}): ChatDataset {
    return new ChatDataset(loadProcessor<RgbImage>(dir), opts);
  }

  /** Reads every line of `file`; errors name the file and line. */
  load(file: string): LoadedData {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new DataError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const out: LoadedData = { file, examples: [], skipped: [] };
    text.split('\n').forEach((raw, i) => {
      if (raw.trim() === '') return;
      const line = i + 1;
      const ex = this.example(raw, file, line);
      const max = this.opts.maxLength;
      if (max !== undefined && ex.inputIds.length > max) {
        if ((this.opts.onTooLong ?? 'skip') === 'error') {
          throw new DataError(`${file}:${line}: ${ex.inputIds.length} tokens, longer than the maximum length ${max}`);
        }
        out.skipped.push({ line, tokens: ex.inputIds.length });
        return;
      }
      out.examples.push(ex);
    });
    return out;
  }

  /** One JSONL line -> token row and labels. */
  example(raw: string, file: string, line: number): Example {
    const at = `${file}:${line}`;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (e) {
      throw new DataError(`${at}: malformed JSON (${(e as Error).message})`);
    }
    const messages = checkMessages(json, at);
    const images = imagePaths(messages, path.dirname(file), at);
    const proc = this.processor;
    const features = images.length ? proc.imageProcessor!.preprocess(images.map((f) => readImage(f, at))) : undefined;
    const grids = features?.imageGridThw ?? [];
    const render = (msgs: ChatMessage[], addGenerationPrompt: boolean) => {
      try {
        return proc.applyChatTemplate(msgs, { addGenerationPrompt });
      } catch (e) {
        throw new DataError(`${at}: ${(e as Error).message}`);
      }
    };
    /** ids of a rendered prefix: its image placeholders expanded with the grids of the images it holds */
    const idsOf = (text: string): number[] => {
      const k = text.split(proc.imageToken).length - 1;
      const processedImages = { pixelValues: new Float32Array(0), shape: [0, 0], imageGridThw: grids.slice(0, k) };
      try {
        return proc.call({ text: [text], ...(k ? { processedImages } : {}) }).inputIds[0]!;
      } catch (e) {
        throw new DataError(`${at}: ${(e as Error).message}`);
      }
    };
    const inputIds = idsOf(render(messages, false));
    const labels = new Array<number>(inputIds.length).fill(IGNORE_INDEX);
    if ((this.opts.trainOn ?? 'assistant') === 'all') {
      inputIds.forEach((id, t) => id !== proc.imageTokenId && (labels[t] = id));
    } else {
      messages.forEach((m, i) => {
        if (m.role !== 'assistant') return;
        const start = prefixLength(idsOf(render(messages.slice(0, i), true)), inputIds, at, i, 'start');
        const end = prefixLength(idsOf(render(messages.slice(0, i + 1), false)), inputIds, at, i, 'end');
        for (let t = start; t < end; t++) labels[t] = inputIds[t]!;
      });
    }
    const eos = proc.tokenizer.eosTokenId;
    if ((this.opts.appendEos ?? true) && messages[messages.length - 1]!.role === 'assistant' && eos !== null) {
      inputIds.push(eos);
      labels.push(eos);
    }
    if (labels.every((y) => y === IGNORE_INDEX)) throw new DataError(`${at}: no token to learn (the assistant turns are empty)`);
    return { line, inputIds, labels, images, imageGridThw: grids };
  }

  /**
   * Pads `examples` into one batch on the tokenizer's padding side (pad id, attention 0, label -100) and loads
   * their images. The caller disposes `inputs.pixelValues`.
   */
  collate(examples: Example[]): Batch {
    if (examples.length === 0) throw new DataError('collate: no examples');
    const tok = this.processor.tokenizer;
    const pad = tok.padTokenId ?? tok.eosTokenId ?? 0;
    const L = Math.max(...examples.map((e) => e.inputIds.length));
    const side = tok.paddingSide;
    const padRow = <T>(row: T[], fill: T) => {
      const p = new Array<T>(L - row.length).fill(fill);
      return side === 'left' ? [...p, ...row] : [...row, ...p];
    };
    const inputs: Batch['inputs'] = {
      inputIds: examples.map((e) => padRow(e.inputIds, pad)),
      attentionMask: examples.map((e) => padRow(e.inputIds.map(() => 1), 0)),
      labels: examples.map((e) => padRow(e.labels, IGNORE_INDEX)),
    };
    const files = examples.flatMap((e) => e.images.map((f) => [f, e.line] as const));
    if (files.length) {
      const f = this.processor.imageProcessor!.preprocess(files.map(([file, line]) => readImage(file, `line ${line}`)));
      const grids = examples.flatMap((e) => e.imageGridThw);
      if (JSON.stringify(f.imageGridThw) !== JSON.stringify(grids)) throw new DataError(`images changed on disk since loading (lines ${examples.map((e) => e.line).join(', ')})`);
      inputs.pixelValues = tf.tensor2d(f.pixelValues, f.shape as [number, number]);
      inputs.imageGridThw = f.imageGridThw;
    }
    return { inputs, numTokens: examples.reduce((n, e) => n + e.inputIds.length, 0), lines: examples.map((e) => e.line) };
  }
}

/** Length of `prefix` when it is a prefix of `ids`; the assistant turn must start and end on token boundaries. */
function prefixLength(prefix: number[], ids: number[], at: string, turn: number, which: string): number {
  const ok = prefix.length <= ids.length && prefix.every((id, t) => id === ids[t]);
  if (!ok) throw new DataError(`${at}: message ${turn} (assistant) does not ${which} on a token boundary of the rendered chat; cannot label it`);
  return prefix.length;
}

function checkMessages(json: unknown, at: string): ChatMessage[] {
  if (!isObj(json) || !Array.isArray(json.messages)) throw new DataError(`${at}: expected an object with a "messages" list`);
  const messages = json.messages as unknown[];
  messages.forEach((m, i) => {
    if (!isObj(m) || typeof m.role !== 'string') throw new DataError(`${at}: message ${i} has no "role"`);
    const c = m.content;
    if (!(typeof c === 'string' || Array.isArray(c) || c === null || c === undefined)) throw new DataError(`${at}: message ${i}: "content" must be a string or a list of parts`);
  });
  const assistant = (messages as ChatMessage[]).filter((m) => m.role === 'assistant');
  if (assistant.length === 0) throw new DataError(`${at}: no assistant turn to learn from`);
  if (assistant.every((m) => !m.content)) throw new DataError(`${at}: every assistant turn is empty`);
  return messages as ChatMessage[];
}

/** Absolute paths of the image parts, in order; a part without a path or a path that does not exist is an error. */
function imagePaths(messages: ChatMessage[], base: string, at: string): string[] {
  const out: string[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (!isObj(part)) throw new DataError(`${at}: message ${i} part ${j} is not an object`);
      if (part.type === 'video' || 'video' in part) throw new DataError(`${at}: message ${i} part ${j}: videos are not supported in training data`);
      if (!(part.type === 'image' || 'image' in part)) return;
      if (typeof part.image !== 'string') throw new DataError(`${at}: message ${i} part ${j}: an image part needs "image": "<path>"`);
      const file = path.resolve(base, part.image);
      if (!fs.existsSync(file)) throw new DataError(`${at}: image ${JSON.stringify(part.image)} not found (looked at ${file})`);
      out.push(file);
    });
  });
  return out;
}

function readImage(file: string, at: string): RgbImage {
  try {
    return loadImage(file);
  } catch (e) {
    throw new DataError(`${at}: ${(e as Error).message}`);
  }
}
