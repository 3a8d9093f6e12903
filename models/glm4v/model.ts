// Port of transformers/models/glm4v/modeling_glm4v.py (Glm4vModel, Glm4vForConditionalGeneration) and the
// glm46v copies (Glm46VModel, Glm46VForConditionalGeneration). Names match the checkpoint.
import * as tf from '@tensorflow/tfjs';
import { loadCheckpoint } from '../../lib/checkpoint';
import { assertParametersFit } from '../../lib/device_limits';
import type { TextCache } from '../../lib/kv_cache';
import { Module } from '../../lib/module';
import { causalLmLoss } from '../../layers/loss';
import { Linear } from '../../layers/linear';
import { Glm4vConfig, readGlm4vConfig } from './config';
import { flattenGridThw, getRopeIndex } from './rope_index';
import { mmTokenTypeIds, placeholderPositions } from './placeholders';
import { Glm4vTextModel } from './text';
import { Glm4vVisionModel } from './vision';
import { explainUntiedHead, isIgnoredKey } from './weights';

/** Token ids as host rows or an int32 tensor [B, L] (read once on the host: positions and placeholders are index math). */
export type Ids = number[][] | tf.Tensor2D;

export interface Glm4vInputs {
  inputIds: Ids;
  /** [B, past+L], 1 = token, 0 = padding */
  attentionMask?: Ids;
  /** [3, B, L] M-RoPE rows; computed with getRopeIndex from the ids and grids when absent */
  positionIds?: number[][][];
  /** [N, C*T*P*P] processor rows for all images, in placeholder order */
  pixelValues?: tf.Tensor2D;
  imageGridThw?: number[][];
  pixelValuesVideos?: tf.Tensor2D;
  videoGridThw?: number[][];
  /** the processor's mm_token_type_ids (0 text, 1 image, 2 video), [B, L]; computed from the ids when absent */
  mmTokenTypeIds?: number[][];
  cache?: TextCache;
}

export interface Glm4vModelOutput {
  lastHiddenState: tf.Tensor3D;
  /** the [3, B, L] positions used */
  positionIds: number[][][];
  /** per row: max position + 1 - unpadded length (generation continues from max position + 1) */
  ropeDeltas: number[];
}

const toRows = (x: Ids): number[][] => (Array.isArray(x) ? x : (x.arraySync() as number[][]));

export class Glm4vModel extends Module {
  readonly visual: Glm4vVisionModel;
  readonly languageModel: Glm4vTextModel;

  /** `textModel` builds the text model: glm4v_moe passes its Mixture-of-Experts one (models/glm4v_moe/model.ts). */
  constructor(readonly config: Glm4vConfig, textModel = (c: Glm4vConfig['text_config']): Glm4vTextModel => new Glm4vTextModel(c)) {
    super();
    this.visual = this.register('visual', new Glm4vVisionModel(config.vision_config));
    this.languageModel = this.register('language_model', textModel(config.text_config));
  }

  /** [Σ t·h·w, C·T·P·P] -> [Σ t·h·w / merge², D]: one feature row per image placeholder token. */
  getImageFeatures(pixelValues: tf.Tensor2D, imageGridThw: number[][]): tf.Tensor2D {
    return this.visual.forward(pixelValues, imageGridThw);
  }

  /** Each temporal slice of a video is its own attention block: the grid [t, h, w] becomes t grids [1, h, w]. */
  getVideoFeatures(pixelValuesVideos: tf.Tensor2D, videoGridThw: number[][]): tf.Tensor2D {
    return this.visual.forward(pixelValuesVideos, flattenGridThw(videoGridThw));
  }

  forward(inputs: Glm4vInputs): Glm4vModelOutput {
    const ids = toRows(inputs.inputIds);
    const mask = inputs.attentionMask ? toRows(inputs.attentionMask) : undefined;
    const cfg = this.config;
    const types = inputs.mmTokenTypeIds ?? ids.map((row) => mmTokenTypeIds(row, cfg));
    const slots = placeholderPositions(types);
    const merge2 = cfg.vision_config.spatial_merge_size ** 2;
    const tokensOf = (grids: number[][]) => grids.reduce((n, [t, h, w]) => n + (t! * h! * w!) / merge2, 0);
    if (inputs.pixelValues) checkCount('Image', slots.image.length, tokensOf(inputs.imageGridThw ?? []));
    if (inputs.pixelValuesVideos) checkCount('Video', slots.video.length, tokensOf(inputs.videoGridThw ?? []));
    const { positionIds, ropeDeltas } = inputs.positionIds
      ? { positionIds: inputs.positionIds, ropeDeltas: ids.map(() => 0) }
      : getRopeIndex(ids, mask, inputs.imageGridThw ?? [], inputs.videoGridThw ?? [], {
          image_token_id: cfg.image_token_id,
          video_start_token_id: cfg.video_start_token_id,
          video_end_token_id: cfg.video_end_token_id,
          spatialMergeSize: cfg.vision_config.spatial_merge_size,
        }, types);
    const lastHiddenState = tf.tidy(() => {
      const [B, L] = [ids.length, ids[0]!.length];
      const idsT = tf.tensor2d(ids, [B, L], 'int32');
      let embeds = this.languageModel.embedTokens.forward(idsT) as tf.Tensor3D; // [B, L, D]
      const features: tf.Tensor2D[] = [];
      const positions: number[] = [];
      if (inputs.pixelValues) {
        features.push(this.getImageFeatures(inputs.pixelValues, inputs.imageGridThw ?? []));
        positions.push(...slots.image);
      }
      if (inputs.pixelValuesVideos) {
        features.push(this.getVideoFeatures(inputs.pixelValuesVideos, inputs.videoGridThw ?? []));
        positions.push(...slots.video);
      }
      if (features.length) embeds = maskedScatter(embeds, positions, tf.concat(features, 0));
      return this.languageModel.forward({
        inputsEmbeds: embeds,
        positionIds: tf.tensor3d(positionIds, [3, B, L], 'int32'),
        // an all-ones mask is the same as none, and none lets the text model skip the padding part
        ...(mask?.some((r) => r.some((v) => !v)) ? { attentionMask: tf.tensor2d(mask, [B, mask[0]!.length], 'int32') } : {}),
        ...(inputs.cache ? { cache: inputs.cache } : {}),
      });
    });
    return { lastHiddenState, positionIds, ropeDeltas };
  }
}

/** As HF get_placeholder_mask: the number of placeholder tokens must equal the number of feature rows (t·h·w / merge²). */
function checkCount(kind: 'Image' | 'Video', tokens: number, features: number): void {
  if (tokens !== features) {
    throw new Error(`${kind} features and ${kind.toLowerCase()} tokens do not match, tokens: ${tokens}, features: ${features}`);
  }
}

/**
 * embeds [B, L, D] with rows at the flat positions b*L+l replaced by `features` [N, D] in order, as
 * torch's masked_scatter. A gather over [embeds; features], so gradients reach both.
 */
function maskedScatter(embeds: tf.Tensor3D, positions: number[], features: tf.Tensor2D): tf.Tensor3D {
  const [B, L, D] = embeds.shape;
  const index = Int32Array.from({ length: B * L }, (_, i) => i);
  positions.forEach((p, k) => (index[p] = B * L + k));
  const table = tf.concat([tf.reshape(embeds, [B * L, D]), features], 0);
  return tf.reshape(tf.gather(table, tf.tensor1d(index, 'int32')), [B, L, D]);
}

export interface CausalLmInputs extends Glm4vInputs {
  /** [B, L], -100 = ignored; gives `loss` */
  labels?: number[][];
  /** 0 = logits for every position; k = only the last k positions (generation uses 1) */
  logitsToKeep?: number;
}

export interface CausalLmOutput extends Omit<Glm4vModelOutput, 'lastHiddenState'> {
  logits: tf.Tensor3D;
  loss?: tf.Scalar;
}

export class Glm4vForConditionalGeneration extends Module {
  /** HF's _tied_weights_keys (alias: source), applied when config.tie_word_embeddings is true. */
  static readonly tiedWeightsKeys: Readonly<Record<string, string>> = { 'lm_head.weight': 'model.language_model.embed_tokens.weight' };

  readonly model: Glm4vModel;
  readonly lmHead: Linear;

  constructor(readonly config: Glm4vConfig, model = (c: Glm4vConfig): Glm4vModel => new Glm4vModel(c)) {
    super();
    this.model = this.register('model', model(config));
    const t = config.text_config;
    this.lmHead = this.register('lm_head', new Linear(t.hidden_size, t.vocab_size, { bias: false }));
    // Tied: one Parameter under both keys (named once, as embed_tokens), so both uses add into one gradient.
    if (config.tie_word_embeddings) {
      for (const [alias, source] of Object.entries(Glm4vForConditionalGeneration.tiedWeightsKeys)) this.tie(alias, source);
    }
  }

  forward(inputs: CausalLmInputs): CausalLmOutput {
    const out = this.model.forward(inputs);
    const keep = inputs.logitsToKeep ?? 0;
    return tf.tidy(() => {
      const h = out.lastHiddenState;
      const L = h.shape[1];
      const hidden = keep > 0 && keep < L ? tf.slice(h, [0, L - keep, 0], [-1, keep, -1]) : h;
      const logits = this.lmHead.forward(hidden) as tf.Tensor3D;
      h.dispose();
      const loss = inputs.labels ? causalLmLoss(logits, inputs.labels) : undefined;
      return { logits, ...(loss ? { loss } : {}), positionIds: out.positionIds, ropeDeltas: out.ropeDeltas };
    }) as CausalLmOutput;
  }

  /**
   * HF's gradient_checkpointing_enable(): every vision block and decoder layer keeps only its input during a
   * forward under gradient recording and runs again in the backward pass (about a third more compute, a fraction of
   * the memory). Gradients are computed for `trainable` (default: every variable marked trainable), so pass the
   * trainable set when training a subset (LoRA), or frozen weights get gradients nobody reads.
   */
  gradientCheckpointingEnable(trainable?: Iterable<tf.Variable>): void {
    const set = trainable ? new Set(trainable) : undefined;
    const want = set ? (v: tf.Variable) => set.has(v) : (v: tf.Variable) => v.trainable;
    this.model.languageModel.gradientCheckpointing = want;
    this.model.visual.gradientCheckpointing = want;
  }

  gradientCheckpointingDisable(): void {
    this.model.languageModel.gradientCheckpointing = undefined;
    this.model.visual.gradientCheckpointing = undefined;
  }

  /** Loads `config.json` and the safetensors weights (single file or sharded) of a Hugging Face checkpoint folder. */
  static fromPretrained<T extends Glm4vForConditionalGeneration>(this: new (c: Glm4vConfig) => T, dir: string): T {
    const config = readGlm4vConfig(dir);
    try {
      const model = new this(config);
      assertParametersFit(model.namedParams()); // a weight the device cannot bind, even split, is refused before reading
      return loadCheckpoint(model, dir, { ignore: isIgnoredKey });
    } catch (e) {
      throw explainUntiedHead(e, config);
    }
  }
}

/** GLM-4.6V: the same model; only the config class defaults differ (video start/end token ids). */
export class Glm46VModel extends Glm4vModel {}
export class Glm46VForConditionalGeneration extends Glm4vForConditionalGeneration {}
