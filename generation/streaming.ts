// Streaming text on top of generateTokens: each step yields the new token of every row and the text it adds.
import { GenerateOptions, generateTokens } from './generate';
import type { CausalLm, CausalLmInputs } from './model';

/** Turns a growing list of token ids into text deltas, holding back an incomplete UTF-8 character. */
export class TextStreamer {
  private ids: number[] = [];
  private printed = 0;

  constructor(private readonly decode: (ids: number[]) => string) {}

  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    if (text.endsWith('\uFFFD')) return '';
    const fresh = text.slice(this.printed);
    this.printed = text.length;
    return fresh;
  }

  get text(): string {
    return this.decode(this.ids);
  }
}

export interface StreamStep {
  /** the new token of each row (the pad id once a row has stopped) */
  tokens: number[];
  /** the text each row's token adds (stop and pad tokens add none) */
  text: string[];
}

/** An async iterator of tokens and text, e.g. `for await (const {text} of streamGenerate(...)) write(text[0])`. */
export async function* streamGenerate(
  model: CausalLm, inputs: CausalLmInputs, decode: (ids: number[]) => string, opts: GenerateOptions = {},
): AsyncGenerator<StreamStep> {
  const stop = new Set(opts.eosTokenId ?? model.config.eos_token_id);
  const rows = (inputs.inputIds as number[][]).length;
  const streamers = Array.from({ length: rows }, () => new TextStreamer(decode));
  const done = new Array<boolean>(rows).fill(false);
  for await (const tokens of generateTokens(model, inputs, opts)) {
    const text = tokens.map((t, b) => {
      if (done[b]) return '';
      if (stop.has(t)) {
        done[b] = true;
        return '';
      }
      return streamers[b]!.push(t);
    });
    yield { tokens, text };
  }
}
