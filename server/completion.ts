// One chat completion from a prepared request to OpenAI's response shapes: a whole `chat.completion`, or
// `chat.completion.chunk` Server-Sent Events ending with `data: [DONE]`. Tool calls and reasoning come from
// processors/tool_parser.ts as the text is generated.
import * as crypto from 'crypto';
import { ParserEvent, ToolCallParser, collectEvents } from '../processors/tool_parser';
import { asApiError } from './errors';
import type { FinishReason } from './scheduler';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface CompletionSink {
  /** a streamed chunk (stream: true) */
  chunk(obj: unknown): void;
  /** the end: the whole response (stream: false), or nothing more to send but [DONE] */
  end(obj: unknown | null, usage: Usage, finish: FinishReason | 'error'): void;
}

/** Collects or streams one completion; the scheduler's Job callbacks call text/done/error. */
export class Completion {
  readonly id = `chatcmpl-${crypto.randomBytes(12).toString('hex')}`;
  readonly created = Math.floor(Date.now() / 1000);
  private readonly events: ParserEvent[] = [];

  constructor(
    private readonly model: string,
    private readonly parser: ToolCallParser,
    private readonly stream: boolean,
    private readonly includeUsage: boolean,
    private readonly promptTokens: number,
    private readonly sink: CompletionSink,
  ) {
    if (stream) this.send({ role: 'assistant', content: '' }, null);
  }

  text(delta: string): void {
    this.take(this.parser.push(delta));
  }

  done(reason: FinishReason, completionTokens: number): void {
    this.take(this.parser.finish());
    const usage = { prompt_tokens: this.promptTokens, completion_tokens: completionTokens, total_tokens: this.promptTokens + completionTokens };
    if (reason === 'abort') return this.sink.end(null, usage, reason);
    const answer = collectEvents(this.events);
    const finish = reason === 'stop' && answer.tool_calls.length ? 'tool_calls' : reason;
    if (this.stream) {
      this.send({}, finish);
      if (this.includeUsage) this.sink.chunk({ ...this.head(), choices: [], usage });
      return this.sink.end(null, usage, reason);
    }
    const message: Record<string, unknown> = { role: 'assistant', content: answer.content };
    if (answer.reasoning_content !== null) message.reasoning_content = answer.reasoning_content;
    if (answer.tool_calls.length) message.tool_calls = answer.tool_calls;
    const body = { ...this.head('chat.completion'), choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage };
    this.sink.end(body, usage, reason);
  }

  error(e: unknown): void {
    const usage = { prompt_tokens: this.promptTokens, completion_tokens: 0, total_tokens: this.promptTokens };
    const err = asApiError(e);
    if (this.stream) this.sink.chunk(err.toJSON());
    this.sink.end(this.stream ? null : err, usage, 'error');
  }

  private take(events: ParserEvent[]): void {
    if (!this.stream) {
      this.events.push(...events);
      return;
    }
    for (const e of events) {
      this.events.push(e);
      if (e.kind === 'content') this.send({ content: e.text }, null);
      else if (e.kind === 'reasoning') this.send({ reasoning_content: e.text }, null);
      else this.send({ tool_calls: [{ index: e.index, ...e.call }] }, null);
    }
  }

  private head(object = 'chat.completion.chunk'): Record<string, unknown> {
    return { id: this.id, object, created: this.created, model: this.model };
  }

  private send(delta: Record<string, unknown>, finish: string | null): void {
    this.sink.chunk({ ...this.head(), choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  }
}
