// Glm46VProcessor / Glm4vProcessor against transformers' AutoProcessor on the tiny models
// (spec/fixtures/processor/*.safetensors from scripts/parity/cases_processor.py): ids, masks and mm_token_type_ids exact.
import * as fs from 'fs';
import * as path from 'path';
import { expect } from 'chai';
import { ChatMessage } from '../../processors/chat_template';
import {
  Glm46VProcessor, Glm4vProcessor, ImageFeatures, loadProcessor, ProcessedVideo, pythonFormatFixed,
} from '../../processors/processor';
import { ProcessorError } from '../../processors/errors';
import { loadImage } from '../../processors/image_io';
import { expectClose } from '../helpers/expect_close';
import { HostTensor } from '../../lib/safetensors';
import { fixturePath, loadReference, Reference } from '../helpers/fixtures';

function rows(t: HostTensor): number[][] {
  const [B, L] = t.shape as [number, number];
  return Array.from({ length: B }, (_, b) => Array.from(t.data.subarray(b * L, (b + 1) * L)));
}

function load(name: string): { ref: Reference; proc: Glm4vProcessor } {
  const ref = loadReference(fixturePath('processor', `${name}.safetensors`));
  const proc = loadProcessor(ref.modelDir);
  // the class transformers' AutoProcessor chose for this folder
  expect(proc.constructor.name, `${name} processor class`).to.equal(ref.metadata.processor_class);
  return { ref, proc };
}

/** The reference's image grids as image processor output (pixel values are checked with the image processor). */
function gridsOnly(ref: Reference): ImageFeatures {
  return { pixelValues: new Float32Array(0), shape: [0, 1176], imageGridThw: rows(ref.get('proc:image_grid_thw')) };
}

function expectProcOutput(name: string, ref: Reference, out: { inputIds: number[][]; attentionMask: number[][]; mmTokenTypeIds: number[][] }): void {
  expect(out.inputIds, `${name} input_ids`).to.deep.equal(rows(ref.get('proc:input_ids')));
  expect(out.attentionMask, `${name} attention_mask`).to.deep.equal(rows(ref.get('proc:attention_mask')));
  expect(out.mmTokenTypeIds, `${name} mm_token_type_ids`).to.deep.equal(rows(ref.get('proc:mm_token_type_ids')));
}

describe('processors/processor: Python float formatting', () => {
  const cases = JSON.parse(fs.readFileSync(fixturePath('processor', 'python_format.json'), 'utf8')) as { x: string; digits: number; expected: string }[];
  const parse = (s: string): number => ({ inf: Infinity, '-inf': -Infinity, nan: NaN } as Record<string, number>)[s] ?? Number(s);

  it("formats like Python's format(x, '.Nf') on every reference value", () => {
    expect(cases.length).to.be.greaterThan(500);
    const bad = cases.filter((c) => pythonFormatFixed(parse(c.x), c.digits) !== c.expected);
    expect(bad.slice(0, 5).map((c) => `${c.x} .${c.digits}f: got ${pythonFormatFixed(parse(c.x), c.digits)}, want ${c.expected}`)).to.deep.equal([]);
  });

  it('rounds the binary value half to even where toFixed does not (0.25 -> 0.2, 1.25 -> 1.2, 0.35 -> 0.3, 2.675 -> 2.7)', () => {
    const want = ['0.25', '1.25', '0.35', '2.675'].map((x) => cases.find((c) => c.digits === 1 && c.x === x)!);
    for (const c of want) expect(pythonFormatFixed(Number(c.x), 1), c.x).to.equal(c.expected);
    expect(want.find((c) => c.x === '0.25')!.expected).to.not.equal((0.25).toFixed(1));
  });
});

describe('processors/processor', () => {
  for (const name of ['chat_text', 'chat_text_nothink', 'chat_two_images', 'chat_batch', 'chat_image_glm4v']) {
    it(`${name}: renders the chats and gives transformers' ids, mask and mm_token_type_ids`, () => {
      const { ref, proc } = load(name);
      const chats = JSON.parse(ref.metadata.messages!) as ChatMessage[][];
      const opts = JSON.parse(ref.metadata.options!) as { add_generation_prompt: boolean; enable_thinking?: boolean };
      const text = chats.map((c) => proc.applyChatTemplate(c, {
        addGenerationPrompt: opts.add_generation_prompt,
        ...(opts.enable_thinking !== undefined ? { enableThinking: opts.enable_thinking } : {}),
      }));
      expect(text).to.deep.equal(JSON.parse(ref.metadata.text!));
      const files = JSON.parse(ref.metadata.images!) as string[];
      const images = files.map((f) => loadImage(fixturePath('processor', f)));
      const out = proc.call({ text, ...(images.length ? { images } : {}) });
      expectProcOutput(name, ref, out);
      if (images.length) expect(out.imageGridThw, `${name} image_grid_thw`).to.deep.equal(rows(ref.get('proc:image_grid_thw')));
      if (ref.tensors.has('proc:pixel_values')) {
        const pv = ref.get('proc:pixel_values');
        expect(out.pixelValuesShape).to.deep.equal(pv.shape);
        expectClose(out.pixelValues!, pv.data, { atol: 0.016, rtol: 0, label: `${name} pixel_values` });
      }
    });
  }

  it('applyChatTemplate(tokenize: true) reads the images of the messages and gives the same ids and pixels', () => {
    const { ref, proc } = load('chat_two_images');
    const [chat] = JSON.parse(ref.metadata.messages!) as ChatMessage[][];
    const out = proc.applyChatTemplate(chat!, { addGenerationPrompt: true, tokenize: true, baseDir: fixturePath('processor') });
    expectProcOutput('chat_two_images (tokenize)', ref, out);
    expectClose(out.pixelValues!, ref.get('proc:pixel_values').data, { atol: 0.016, rtol: 0, label: 'pixel_values (tokenize)' });
  });

  for (const name of ['video_glm46v', 'video_glm4v']) {
    it(`${name}: expands each video into timestamped frames as transformers does`, () => {
      const { ref, proc } = load(name);
      const grids = rows(ref.get('proc:video_grid_thw'));
      const meta = JSON.parse(ref.metadata.videos!) as { fps: number | null; frames_indices: number[] }[];
      const videos: ProcessedVideo[] = meta.map((m, i) => ({ videoGridThw: grids[i]!, fps: m.fps, framesIndices: m.frames_indices }));
      const out = proc.call({ text: JSON.parse(ref.metadata.text!), videos: { videos } });
      expectProcOutput(name, ref, out);
      expect(out.mmTokenTypeIds[0]!.filter((t) => t === 2).length).to.be.greaterThan(0);
      const label = name === 'video_glm46v' ? '0.2 seconds' : '<|end_of_image|>1<|begin_of_image|>';
      expect(proc.decode(out.inputIds[0]!)).to.include(label);
    });
  }

  it('consumes images in order across the batch (row 0 takes the first grid)', () => {
    const { ref, proc } = load('chat_batch');
    const text = JSON.parse(ref.metadata.text!) as string[];
    const swapped = gridsOnly(ref);
    swapped.imageGridThw.reverse();
    const out = proc.call({ text, processedImages: swapped });
    const counts = out.inputIds.map((r) => r.filter((id) => id === proc.imageTokenId).length);
    expect(counts).to.deep.equal(swapped.imageGridThw.map((g) => (g[0]! * g[1]! * g[2]!) / 4));
  });

  it('names both counts when images and placeholders disagree', () => {
    const { ref, proc } = load('chat_two_images');
    const text = JSON.parse(ref.metadata.text!) as string[];
    const g = gridsOnly(ref);
    const one = { ...g, imageGridThw: g.imageGridThw.slice(0, 1) };
    const three = { ...g, imageGridThw: [...g.imageGridThw, [1, 2, 2]] };
    expect(() => proc.call({ text, processedImages: one })).to.throw(ProcessorError, /\(2\).*\(1\)/);
    expect(() => proc.call({ text, processedImages: three })).to.throw(ProcessorError, /\(2\).*\(3\)/);
    expect(() => proc.call({ text })).to.throw(ProcessorError, 'Found 2 <|image|> tokens in the text but no images');
  });

  it('decode / batchDecode keep special tokens, postProcessImageTextToText skips them, as transformers', () => {
    const { ref, proc } = load('chat_text');
    const cases = JSON.parse(fs.readFileSync(fixturePath('processor', 'tokenizer_cases.json'), 'utf8')) as {
      batch_decode: { ids: number[][]; expected: string[]; expected_post_process: string[] };
    };
    const b = cases.batch_decode;
    expect(proc.batchDecode(b.ids)).to.deep.equal(b.expected);
    expect(proc.postProcessImageTextToText(b.ids)).to.deep.equal(b.expected_post_process);
    const ids = rows(ref.get('proc:input_ids'));
    expect(proc.decode(ids[0]!)).to.equal((JSON.parse(ref.metadata.text!) as string[])[0]);
  });

  it('fails with the folder named when the model folder has no tokenizer', () => {
    const dir = path.join(fixturePath('processor'));
    expect(() => Glm46VProcessor.fromPretrained(dir)).to.throw(ProcessorError, `${dir} has no tokenizer.json`);
  });
});
