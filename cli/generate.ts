// glm46v generate: streams an answer to a prompt with images (or a video) to stdout; timing on stderr.
import * as fs from 'fs';
import * as path from 'path';
import { initBackend } from '../lib/backend';
import type { GenerateOptions } from '../generation/generate';
import { readGenerationConfig } from '../generation/generation_config';
import { streamGenerate } from '../generation/streaming';
import { loadModel } from '../models/glm4v/auto';
import type { CausalLmInputs } from '../models/glm4v/model';
import type { ContentPart } from '../processors/chat_template';
import { loadImage, RgbImage } from '../processors/image_io';
import { Glm46VImageProcessor } from '../processors/image_processor';
import { asModelInputs, loadProcessor } from '../processors/processor';
import { BUILTIN_MODEL, CliError, parseArgs } from './args';
import { prepareVideo } from './video_input';
import * as tf from '@tensorflow/tfjs';

const USAGE = 'usage: glm46v generate [--model DIR] [--image FILE]... [--video FILE|DIR] --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S]';


function checkModelDir(dir: string): void {
  if (!fs.existsSync(path.join(dir, 'config.json'))) throw new CliError(`model folder ${dir} is not readable: no config.json`);
}

export const command = {
  summary: 'stream an answer to a prompt with images or a video',
  async run(argv: string[]): Promise<void> {
    const a = parseArgs(argv, {
      model: { type: 'string', help: 'Hugging Face checkpoint folder (default: the built-in model)' },
      image: { type: 'string', multiple: true, help: 'an image file (PNG or JPEG); repeat for several' },
      video: { type: 'string', help: 'a video file (decoded with ffmpeg) or a folder of frames' },
      prompt: { type: 'string', help: 'the question' },
      'max-new-tokens': { type: 'number', integer: true, min: 1, help: 'at most this many new tokens (default 256)' },
      temperature: { type: 'number', min: 0, help: '0 = greedy; default from generation_config.json' },
      'top-p': { type: 'number', min: 0, minExclusive: true, max: 1, help: 'nucleus sampling mass (1 = off)' },
      'top-k': { type: 'number', integer: true, min: 0, help: 'sample among the k most likely tokens (0 = off)' },
      seed: { type: 'number', integer: true, min: 0, max: 2 ** 32 - 1, help: 'seed for reproducible sampling' },
      'enable-thinking': { type: 'boolean', help: 'let the model think first (templates with the switch)' },
    }, USAGE);
    if (!a) return;
    const prompt = (a.prompt as string | undefined)?.trim();
    if (!prompt) throw new CliError("--prompt is required and must not be empty (see --help)");
    const imageFiles = (a.image as string[] | undefined) ?? [];
    for (const f of imageFiles) if (!fs.existsSync(f)) throw new CliError(`image file ${f} does not exist`);
    const videoArg = a.video as string | undefined;
    if (videoArg && !fs.existsSync(videoArg)) throw new CliError(`video ${videoArg} does not exist`);
    const dir = (a.model as string | undefined) ?? BUILTIN_MODEL;
    checkModelDir(dir);

    const images: RgbImage[] = imageFiles.map(loadImage);
    const processor = loadProcessor<RgbImage>(dir, Glm46VImageProcessor.fromPretrained(dir));
    const video = videoArg ? await prepareVideo(dir, videoArg) : undefined;
    const content: ContentPart[] = [
      ...images.map(() => ({ type: 'image' as const })),
      ...(video ? [{ type: 'video' as const }] : []),
      { type: 'text', text: prompt },
    ];
    const text = processor.applyChatTemplate([{ role: 'user', content }], { addGenerationPrompt: true, enableThinking: a['enable-thinking'] === true });
    // the processor needs no backend: a bad image is refused before the backend line and the model load
    const enc = processor.call({ text: [text], ...(images.length ? { images } : {}), ...(video ? { videos: video } : {}) });
    await initBackend(); // one stderr line: the backend, its TensorFlow version and device
    const model = loadModel(dir);
    try {
      const inputs: CausalLmInputs = asModelInputs(enc);
      const opts: GenerateOptions = { ...readGenerationConfig(dir) };
      if (a['max-new-tokens'] !== undefined) opts.maxNewTokens = a['max-new-tokens'] as number;
      if (a.temperature !== undefined) opts.temperature = a.temperature as number;
      if (a['top-p'] !== undefined) opts.topP = a['top-p'] as number;
      if (a['top-k'] !== undefined) opts.topK = a['top-k'] as number;
      if (a.seed !== undefined) opts.seed = a.seed as number;

      const decode = (ids: number[]) => processor.decode(ids, { skipSpecialTokens: true });
      const t0 = performance.now();
      let tFirst = t0, n = 0;
      for await (const { text: [delta] } of streamGenerate(model, inputs, decode, opts)) {
        if (n++ === 0) tFirst = performance.now();
        process.stdout.write(delta!);
      }
      const tEnd = performance.now();
      tf.dispose([inputs.pixelValues, inputs.pixelValuesVideos].filter((t): t is tf.Tensor2D => t !== undefined));
      process.stdout.write('\n');
      const decodeRate = n > 1 ? (n - 1) / ((tEnd - tFirst) / 1000) : 0;
      process.stderr.write(`tokens=${n} prefill_ms=${(tFirst - t0).toFixed(0)} decode_tok_s=${decodeRate.toFixed(1)}\n`);
    } finally {
      model.dispose();
    }
  },
};
