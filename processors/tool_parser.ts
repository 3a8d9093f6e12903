// GLM-4.5/4.6V generated text -> OpenAI message parts {content, reasoning_content, tool_calls}, after vLLM's
// glm4_moe_tool_parser.py and its reasoning parser. Hand-written: no npm package parses GLM's <tool_call> XML-ish
// format, and the server needs one incremental state machine so that streamed and whole answers agree exactly.
//
// Format: [<think>REASONING</think>] CONTENT <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>
// with or without newlines between the parts (GLM-4.5 writes them, later templates are compact).

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

/** A piece of the answer as it is recognised while streaming. */
export type ParserEvent =
  | { kind: 'reasoning'; text: string }
  | { kind: 'content'; text: string }
  | { kind: 'tool_call'; index: number; call: ToolCall };

export interface ParsedAnswer {
  /** null when the answer is only tool calls */
  content: string | null;
  reasoning_content: string | null;
  tool_calls: ToolCall[];
}

export interface ToolParserOptions {
  /** the request's tools ({type:'function', function:{name, parameters}}): string-typed parameters stay strings */
  tools?: unknown[] | null;
  /** false: tool calls are not parsed (tool_choice 'none'), the markup stays content */
  parseTools?: boolean;
  /** the prompt already opened <think> (the model continues inside its reasoning) */
  startInReasoning?: boolean;
  /** makes tool call ids; default call_ + 24 random hex digits */
  makeId?: () => string;
}

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';
const CALL_OPEN = '<tool_call>';
const CALL_CLOSE = '</tool_call>';

function randomId(): string {
  let s = 'call_';
  for (let i = 0; i < 24; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

/** Length of the longest suffix of `text` that is a proper prefix of `tag` (text that may still become the tag). */
function partialTagLength(text: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, text.length); n > 0; n--) if (text.endsWith(tag.slice(0, n))) return n;
  return 0;
}

/** The parameter names a tool declares as JSON-schema strings: vLLM keeps those values as written. */
function stringParams(tools: unknown[] | null | undefined, name: string): Set<string> {
  const out = new Set<string>();
  for (const t of tools ?? []) {
    const f = (t as { function?: { name?: unknown; parameters?: { properties?: Record<string, { type?: unknown }> } } }).function;
    if (f?.name !== name) continue;
    for (const [k, p] of Object.entries(f.parameters?.properties ?? {})) if (p?.type === 'string') out.add(k);
  }
  return out;
}

/** A value as JSON where it parses as JSON (numbers, booleans, objects), else the text itself. */
function decodeValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const ARG = /^\s*<arg_key>([\s\S]*?)<\/arg_key>\s*<arg_value>([\s\S]*?)<\/arg_value>/;

/**
 * One call's body (between <tool_call> and </tool_call>) -> name and JSON arguments, or null when it is malformed:
 * no name, a name with spaces or markup, or anything but whitespace and key/value pairs after the name.
 */
export function parseToolCallBody(body: string, tools?: unknown[] | null): { name: string; arguments: string } | null {
  const cut = body.indexOf('<arg_key>');
  const name = (cut < 0 ? body : body.slice(0, cut)).trim();
  if (!name || /[\s<>]/.test(name)) return null;
  const asString = stringParams(tools, name);
  const args: Record<string, unknown> = {};
  let rest = cut < 0 ? '' : body.slice(cut);
  while (rest.trim()) {
    const m = ARG.exec(rest);
    if (!m) return null;
    const key = m[1]!.trim();
    const value = m[2]!.trim();
    if (!key) return null;
    args[key] = asString.has(key) ? value : decodeValue(value);
    rest = rest.slice(m[0].length);
  }
  return { name, arguments: JSON.stringify(args) };
}

type Mode = 'start' | 'reasoning' | 'content' | 'call';

/**
 * Incremental parser: push() text deltas as they are generated, finish() at the end. Text that could still be the
 * start of a tag is held back, so a partial `<tool_call>` never reaches the content; content is trimmed at both
 * ends (whitespace next to a tag or at the end is held until something follows it).
 */
export class ToolCallParser {
  private mode: Mode;
  private buf = '';
  private calls = 0;
  /** which kinds have emitted text already (leading whitespace is dropped before the first piece of each) */
  private readonly started = { content: false, reasoning: false };
  /** whitespace before an open <tool_call>: dropped if the call parses, kept with it as content if not */
  private beforeCall = '';
  private readonly parseTools: boolean;
  private readonly makeId: () => string;

  constructor(private readonly opts: ToolParserOptions = {}) {
    this.mode = opts.startInReasoning ? 'reasoning' : 'start';
    this.parseTools = opts.parseTools ?? true;
    this.makeId = opts.makeId ?? randomId;
  }

  push(delta: string): ParserEvent[] {
    this.buf += delta;
    const out: ParserEvent[] = [];
    while (this.step(out, false));
    return out;
  }

  finish(): ParserEvent[] {
    const out: ParserEvent[] = [];
    while (this.step(out, true));
    if (this.mode === 'call') this.emit(out, 'content', this.beforeCall + CALL_OPEN + this.buf, true); // never closed: text
    else this.emit(out, this.mode === 'reasoning' ? 'reasoning' : 'content', this.buf, true);
    this.buf = '';
    return out;
  }

  /** Consumes what it can of the buffer; true while another step may consume more. */
  private step(out: ParserEvent[], final: boolean): boolean {
    if (this.mode === 'start') return this.stepStart(final);
    if (this.mode === 'reasoning') return this.stepReasoning(out, final);
    if (this.mode === 'content') return this.stepContent(out, final);
    return this.stepCall(out);
  }

  private stepStart(final: boolean): boolean {
    const lead = this.buf.trimStart();
    if (lead.startsWith(THINK_OPEN)) {
      this.buf = lead.slice(THINK_OPEN.length);
      this.mode = 'reasoning';
      return true;
    }
    if (!final && THINK_OPEN.startsWith(lead)) return false; // still possibly "<think>" (or only whitespace so far)
    this.mode = 'content';
    return true;
  }

  private stepReasoning(out: ParserEvent[], final: boolean): boolean {
    const end = this.buf.indexOf(THINK_CLOSE);
    if (end >= 0) {
      this.emit(out, 'reasoning', this.buf.slice(0, end), true);
      this.buf = this.buf.slice(end + THINK_CLOSE.length);
      this.mode = 'content';
      return true;
    }
    if (final) return false;
    this.emitHeld(out, 'reasoning', partialTagLength(this.buf, THINK_CLOSE));
    return false;
  }

  private stepContent(out: ParserEvent[], final: boolean): boolean {
    const start = this.parseTools ? this.buf.indexOf(CALL_OPEN) : -1;
    if (start >= 0) {
      const before = this.buf.slice(0, start);
      const text = before.trimEnd();
      this.emit(out, 'content', text, false);
      this.beforeCall = before.slice(text.length);
      this.buf = this.buf.slice(start + CALL_OPEN.length);
      this.mode = 'call';
      return true;
    }
    if (final) return false;
    this.emitHeld(out, 'content', this.parseTools ? partialTagLength(this.buf, CALL_OPEN) : 0);
    return false;
  }

  private stepCall(out: ParserEvent[]): boolean {
    const end = this.buf.indexOf(CALL_CLOSE);
    if (end < 0) return false;
    const body = this.buf.slice(0, end);
    this.buf = this.buf.slice(end + CALL_CLOSE.length);
    this.mode = 'content';
    const parsed = parseToolCallBody(body, this.opts.tools);
    if (parsed) out.push({ kind: 'tool_call', index: this.calls++, call: { id: this.makeId(), type: 'function', function: parsed } });
    else this.emit(out, 'content', this.beforeCall + CALL_OPEN + body + CALL_CLOSE, false);
    this.beforeCall = '';
    return true;
  }

  /**
   * Emits the buffer but its last `keep` characters (a possible tag) and its trailing whitespace, which wait: they
   * are dropped if a tag or the end follows them.
   */
  private emitHeld(out: ParserEvent[], kind: 'content' | 'reasoning', keep: number): void {
    const ready = this.buf.slice(0, this.buf.length - keep).trimEnd();
    this.emit(out, kind, ready, false);
    this.buf = this.buf.slice(ready.length);
  }

  /** `closed`: a tag or the end follows this piece directly, so its trailing whitespace is dropped. */
  private emit(out: ParserEvent[], kind: 'content' | 'reasoning', text: string, closed: boolean): void {
    let t = this.started[kind] ? text : text.trimStart();
    if (closed) t = t.trimEnd();
    if (!t) return;
    this.started[kind] = true;
    out.push({ kind, text: t });
  }
}

/** Collects parser events into one answer (what a non-streaming response carries). */
export function collectEvents(events: ParserEvent[]): ParsedAnswer {
  let content = '';
  let reasoning = '';
  const calls: ToolCall[] = [];
  for (const e of events) {
    if (e.kind === 'content') content += e.text;
    else if (e.kind === 'reasoning') reasoning += e.text;
    else calls.push(e.call);
  }
  return {
    content: content || (calls.length ? null : ''),
    reasoning_content: reasoning || null,
    tool_calls: calls,
  };
}

/** The whole generated text at once. */
export function parseGeneratedText(text: string, opts: ToolParserOptions = {}): ParsedAnswer {
  const p = new ToolCallParser(opts);
  return collectEvents([...p.push(text), ...p.finish()]);
}
