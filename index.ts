// Public entry point of the glm46v package (CommonJS build; dist/index.mjs re-exports it for `import`).
// tf: the tfjs this package runs on, so that tensors handed to the model come from the same engine.
export * as tf from '@tensorflow/tfjs';
export { describeBackend, initBackend, setBackendPreference, shutdownBackend } from './lib/backend';
export { setupNative } from './lib/native/setup';
export { packageFile } from './lib/package_root';
export type { BackendName } from './lib/backend';
export { SafetensorsFile, readAllSafetensors, writeSafetensors } from './lib/safetensors';
export { CheckpointReader, loadWeights, WeightLoadError } from './lib/checkpoint';
export { Module, ModuleList, Parameter } from './lib/module';
export { ConfigError } from './lib/config';
export { TextCache, KVCache } from './lib/kv_cache';
export { generate, generateTokens, prefill, decodeOne, keepRows, appendRows } from './generation/generate';
export type { GenerateOptions, DecodeState } from './generation/generate';
export { makeSampler, applyTopK, applyTopP, applyRepetitionPenalty } from './generation/sampling';
export { readGenerationConfig } from './generation/generation_config';
export { runParity } from './cli/parity_runner';
export { causalLmLoss } from './layers/loss';

export * from './models/glm4v/config';
export { Glm4vTextModel } from './models/glm4v/text';
export { Glm4vVisionModel } from './models/glm4v/vision';
export { getRopeIndex } from './models/glm4v/rope_index';
export {
  Glm4vModel, Glm46VModel, Glm4vForConditionalGeneration, Glm46VForConditionalGeneration,
} from './models/glm4v/model';
export type { CausalLmInputs, CausalLmOutput, Glm4vInputs } from './models/glm4v/model';
export { loadModel } from './models/glm4v/auto';

export { loadImage, decodeImage } from './processors/image_io';
export type { RgbImage } from './processors/image_io';
export { Glm4vImageProcessor, Glm46VImageProcessor } from './processors/image_processor';
export { Glm4vVideoProcessor, Glm46VVideoProcessor, loadVideoProcessor } from './processors/video_processor';
export { loadVideo } from './processors/video_io';
export { asModelInputs, Glm4vProcessor, Glm46VProcessor, loadProcessor } from './processors/processor';
export type { ModelInputs } from './processors/processor';
export { GlmTokenizer } from './processors/tokenizer';
export { splitThinking, parseBoxes } from './processors/answer';
export { ProcessorError } from './processors/errors';

export { streamGenerate, TextStreamer } from './generation/streaming';
export { createServer, GlmServer } from './server/server';
export type { ServeOptions } from './server/server';
export type { ImageLimits } from './server/images';
export type { VideoLimits } from './server/videos';
export { AdamW, paramGroups } from './train/adamw';
export { clipGradNorm } from './train/clip';
export { cosineWithWarmup, constantWithWarmup } from './train/schedule';
export { LoRALinear, applyLora, mergeLora } from './train/lora';
export { ChatDataset, DataError } from './train/data';
export { train, evaluate } from './train/trainer';
export { saveCheckpoint } from './lib/save';
