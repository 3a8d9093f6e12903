// The GLM-V tokenizer as transformers' TokenizersBackend loads it (tokenizer.json + tokenizer_config.json), over
// @huggingface/tokenizers: encode, decode / batchDecode with skipSpecialTokens, special-token ids by name, padding.
import * as path from 'path';
import { Tokenizer } from '@huggingface/tokenizers';
import { files } from '../lib/byte_source';
import { isObject, Json } from '../lib/config';

import { ProcessorError } from './errors';

export { ProcessorError } from './errors';

/** Reads a JSON file of a model folder; errors name the file (and the folder when it is missing). */
export function readModelJson(dir: string, file: string): Json {
  const full = path.join(dir, file);
  if (!files().exists(full)) throw new ProcessorError(`${full}: not found (the folder ${dir} has no ${file})`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(files().readText(full));
  } catch (e) {
    throw new ProcessorError(`${full}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(parsed)) throw new ProcessorError(`${full}: expected a JSON object`);
  return parsed;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

export interface PaddedBatch {
  inputIds: number[][];
  attentionMask: number[][];
}

/** The tokenizer_config.json entries that name a special token (HF SPECIAL_TOKENS_ATTRIBUTES). */
const NAMED_SPECIAL = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'];

export class GlmTokenizer {
  /** named special tokens as HF's `special_tokens_map` gives them to the chat template (eos_token, pad_token, …) */
  readonly specialTokensMap: Record<string, string>;
  readonly padTokenId: number | null;
  readonly eosTokenId: number | null;
  /** 'left' or 'right', from tokenizer_config.json `padding_side` (HF's default is right) */
  readonly paddingSide: 'left' | 'right';

  constructor(
    readonly tokenizer: Tokenizer,
    readonly config: Json,
    readonly source: string,
  ) {
    this.specialTokensMap = {};
    for (const key of NAMED_SPECIAL) {
      const v = config[key];
      const content = typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : null;
      if (content !== null) this.specialTokensMap[key] = content;
    }
    const pad = this.specialTokensMap.pad_token;
    const eos = this.specialTokensMap.eos_token;
    this.padTokenId = pad === undefined ? null : this.tokenToId(pad);
    this.eosTokenId = eos === undefined ? null : this.tokenToId(eos);
    const side = config.padding_side ?? 'right';
    if (side !== 'left' && side !== 'right') throw new ProcessorError(`${source}/tokenizer_config.json: padding_side must be 'left' or 'right', got ${JSON.stringify(side)}`);
    this.paddingSide = side;
  }

  /** Loads `dir/tokenizer.json` and `dir/tokenizer_config.json`. */
  static fromPretrained(dir: string): GlmTokenizer {
    const tokenizerJson = readModelJson(dir, 'tokenizer.json');
    const config = readModelJson(dir, 'tokenizer_config.json');
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new ProcessorError(`${path.join(dir, 'tokenizer.json')}: cannot build the tokenizer (${(e as Error).message})`);
    }
    return new GlmTokenizer(tokenizer, config, dir);
  }

  /** Token ids of `text`; special tokens written in the text are matched whole, as HF's added tokens are. */
  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  batchDecode(batch: ArrayLike<number>[], opts: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, opts));
  }

  /** The id of a token string; a token the vocabulary lacks is an error naming it and the folder. */
  tokenToId(token: string): number {
    const id = this.tokenizer.token_to_id(token);
    if (id === undefined) throw new ProcessorError(`${this.source}: the tokenizer has no token ${JSON.stringify(token)}`);
    return id;
  }

  idToToken(id: number): string {
    const token = this.tokenizer.id_to_token(id);
    if (token === undefined) throw new ProcessorError(`${this.source}: the tokenizer has no id ${id}`);
    return token;
  }

  /** Encodes a batch and pads it to the longest row on `paddingSide` with the pad token (attention mask 0 there). */
  encodeBatch(texts: string[], opts: { addSpecialTokens?: boolean; paddingSide?: 'left' | 'right' } = {}): PaddedBatch {
    const rows = texts.map((t) => this.encode(t, opts));
    const L = Math.max(0, ...rows.map((r) => r.length));
    const side = opts.paddingSide ?? this.paddingSide;
    if (this.padTokenId === null && rows.some((r) => r.length < L)) {
      throw new ProcessorError(`${this.source}/tokenizer_config.json: padding a batch needs a pad_token, none is set`);
    }
    const padId = this.padTokenId ?? 0;
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    for (const r of rows) {
      const pad = new Array<number>(L - r.length).fill(padId);
      const zeros = new Array<number>(L - r.length).fill(0);
      const ones = new Array<number>(r.length).fill(1);
      inputIds.push(side === 'left' ? [...pad, ...r] : [...r, ...pad]);
      attentionMask.push(side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
    }
    return { inputIds, attentionMask };
  }
}
