// Writes the untrained built-in model (a small GLM-4.6V, randomly initialised) in Hugging Face layout:
//   npx tsx research/shapes/init_builtin.ts OUT_DIR [--seed N] [--vision-std X] [--text-std X] [--rope-theta X]
//                                            [--vision-out-scale X] [--set text_config.hidden_size=256]...
// The tokenizer, chat template and processor configs are the tiny tokenizer's (scripts/parity/tiny_tokenizer.py,
// as saved in spec/fixtures/models/tiny_b, the glm46v fixture). Its pixel budget (3136..25088 px for the two
// temporal copies of an image) keeps a 112 x 112 image at 112 x 112: grid [1, 8, 8], 16 image tokens.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../lib/backend';
import { writeSafetensors } from '../../lib/safetensors';
import { parseGlm4vConfig } from '../../models/glm4v/config';
import { Glm46VForConditionalGeneration } from '../../models/glm4v/model';

const TOKENIZER_DIR = path.join(__dirname, '..', '..', 'spec', 'fixtures', 'models', 'tiny_b');
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'preprocessor_config.json', 'video_preprocessor_config.json'];

// The built-in model does not think: its template is tiny_b's without the enable_thinking switch, so the prompt of
// `glm46v generate` (which passes enable_thinking=false, adding an empty <think></think> where the switch exists) is
// the one the model is trained and evaluated on.
const THINKING_SWITCH = '{% if enable_thinking is defined and not enable_thinking %}<think></think>\n{% endif %}';

function builtinTemplate(): string {
  const t = fs.readFileSync(path.join(TOKENIZER_DIR, 'chat_template.jinja'), 'utf8');
  if (!t.includes(THINKING_SWITCH)) throw new Error(`${TOKENIZER_DIR}/chat_template.jinja: the enable_thinking switch was not found`);
  return t.replace(THINKING_SWITCH, '');
}

// Special-token ids of the tiny tokenizer (scripts/parity/tiny_models.py ID): <|endoftext|>, <|user|>, <|observation|>.
const EOS = [352, 359, 361];
const PAD = 352;

/** Text 128 wide x 4 layers (4 heads / 2 KV heads, head dim 32, 16 rotary dims); vision 64 wide x 2 blocks. */
export const BUILTIN_CONFIG = {
  architectures: ['Glm46VForConditionalGeneration'],
  model_type: 'glm46v',
  dtype: 'float32',
  text_config: {
    model_type: 'glm4v_text',
    vocab_size: 384,
    hidden_size: 128,
    intermediate_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: 'silu',
    max_position_embeddings: 4096,
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    attention_dropout: 0.0,
    use_cache: true,
    rope_parameters: { rope_type: 'default', rope_theta: 10000.0, partial_rotary_factor: 0.5, mrope_section: [2, 3, 3] },
    pad_token_id: PAD,
    eos_token_id: EOS,
  },
  vision_config: {
    model_type: 'glm4v_vision',
    depth: 2,
    hidden_size: 64,
    num_heads: 4,
    hidden_act: 'silu',
    attention_bias: false,
    attention_dropout: 0.0,
    in_channels: 3,
    image_size: 112,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    out_hidden_size: 128,
    intermediate_size: 256,
    rms_norm_eps: 1e-5,
    initializer_range: 0.02,
    rope_parameters: { rope_type: 'axial', rope_theta: 10000.0 },
  },
  image_token_id: 370,
  video_token_id: 371,
  image_start_token_id: 362,
  image_end_token_id: 363,
  video_start_token_id: 364,
  video_end_token_id: 365,
  tie_word_embeddings: false,
  eos_token_id: EOS,
  pad_token_id: PAD,
};

/**
 * HF's std 0.02 is made for wide models: through this 64-wide tower and its gated merger it leaves the image
 * features ~5x smaller than the token embeddings (merger output rms 0.004), and training then learns a constant
 * image vector instead of reading the image. A larger std gives features of the embeddings' order.
 */
const VISION_STD = 0.05;

/** The text model's std; HF's 0.02 by default (its config's initializer_range). */
const TEXT_STD = BUILTIN_CONFIG.text_config.initializer_range;

const GENERATION_CONFIG = { eos_token_id: EOS, pad_token_id: PAD, do_sample: false, use_cache: true };

interface Options {
  out: string;
  seed: number;
  visionStd: number;
  textStd: number;
  /** the text model's rope_theta (weights do not depend on it) */
  ropeTheta: number;
  /** the vision merger's down_proj (so the image features) times this after the init */
  visionOutScale: number;
  /** `--set text_config.hidden_size=256`: config entries (dot paths, JSON values) changed before the init */
  sets: [string, unknown][];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { out: '', seed: 0, visionStd: VISION_STD, textStd: TEXT_STD, ropeTheta: BUILTIN_CONFIG.text_config.rope_parameters.rope_theta, visionOutScale: 1, sets: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--seed' || a === '--vision-std' || a === '--text-std' || a === '--rope-theta' || a === '--vision-out-scale') {
      const v = Number(argv[++i]);
      if (a === '--seed' ? !Number.isInteger(v) : !(v > 0)) throw new Error(`${a}: got ${argv[i]}`);
      if (a === '--seed') o.seed = v;
      else if (a === '--vision-std') o.visionStd = v;
      else if (a === '--text-std') o.textStd = v;
      else if (a === '--vision-out-scale') o.visionOutScale = v;
      else o.ropeTheta = v;
    } else if (a === '--set') {
      const m = /^([\w.]+)=(.+)$/.exec(argv[++i] ?? '');
      if (!m) throw new Error(`--set: expected KEY.PATH=JSON, got ${argv[i]}`);
      try {
        o.sets.push([m[1]!, JSON.parse(m[2]!)]);
      } catch {
        throw new Error(`--set ${m[1]}: the value is not JSON: ${m[2]}`);
      }
    } else if (a.startsWith('-') || o.out) throw new Error(`unexpected argument ${a}`);
    else o.out = a;
  }
  if (!o.out) throw new Error('usage: init_builtin.ts OUT_DIR [--seed N] [--vision-std X] [--text-std X] [--rope-theta X] [--vision-out-scale X] [--set KEY.PATH=JSON]...');
  return o;
}

/** Sets obj.a.b.c = value for 'a.b.c'; every key but the last must already exist. */
function setPath(obj: object, key: string, value: unknown): void {
  const parts = key.split('.');
  let o = obj as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) {
    if (typeof o[p] !== 'object' || o[p] === null) throw new Error(`--set ${key}: the config has no object at ${p}`);
    o = o[p] as Record<string, unknown>;
  }
  if (!(parts.at(-1)! in o)) throw new Error(`--set ${key}: the config has no key ${parts.at(-1)}`);
  o[parts.at(-1)!] = value;
}

async function main(): Promise<void> {
  const { out, seed, visionStd, textStd, ropeTheta, visionOutScale, sets } = parseArgs(process.argv.slice(2));
  const config = structuredClone(BUILTIN_CONFIG);
  config.text_config.rope_parameters.rope_theta = ropeTheta;
  for (const [key, value] of sets) setPath(config, key, value);
  await initBackend({ quiet: true });
  const model = new Glm46VForConditionalGeneration(parseGlm4vConfig(config));
  model.initWeights({ std: textStd, seed });
  model.model.visual.initWeights({ std: visionStd, seed: seed + 100_000 });
  fs.mkdirSync(out, { recursive: true });
  const params = [...model.namedParameters()];
  const down = params.find(([k]) => k.endsWith('visual.merger.down_proj.weight'));
  if (!down) throw new Error('the model has no visual.merger.down_proj.weight');
  if (visionOutScale !== 1) down[1].assign(tf.tidy(() => down[1].mul(visionOutScale)));
  writeSafetensors(
    path.join(out, 'model.safetensors'),
    params.map(([k, v]) => [k, () => ({ dtype: 'F32' as const, shape: v.shape, data: v.dataSync() as Float32Array })]),
    { format: 'pt' },
    new Map(params.map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape }])),
  );
  const dump = (name: string, obj: unknown) => fs.writeFileSync(path.join(out, name), JSON.stringify(obj, null, 2) + '\n');
  dump('config.json', config);
  dump('generation_config.json', GENERATION_CONFIG);
  for (const f of TOKENIZER_FILES) fs.copyFileSync(path.join(TOKENIZER_DIR, f), path.join(out, f));
  fs.writeFileSync(path.join(out, 'chat_template.jinja'), builtinTemplate());
  process.stdout.write(`init_builtin: ${params.length} tensors, ${model.numParameters()} parameters (seed ${seed}, text std ${textStd}, vision std ${visionStd}, rope_theta ${ropeTheta}, image features x${visionOutScale}) -> ${out}\n`);
  model.dispose();
  tf.disposeVariables();
}

main()
  .catch((e) => {
    process.stderr.write(`init_builtin: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  })
  .finally(shutdownBackend);
