// Chat templates as transformers renders them (processing_utils.py ProcessorMixin.apply_chat_template and
// utils/chat_template_utils.py render_jinja_template), over @huggingface/jinja.
import * as fs from 'fs';
import * as path from 'path';
import { Template } from '@huggingface/jinja';
import { isObject } from '../lib/config';
import { ProcessorError } from './errors';

/** One part of a message's content; media parts carry their data under the key named by `type` (or url/path). */
export interface ContentPart {
  type: 'text' | 'image' | 'video' | string;
  text?: string;
  [key: string]: unknown;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content?: string | ContentPart[] | null;
  reasoning_content?: string | null;
  tool_calls?: unknown[] | null;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /** GLM-4.6V's thinking switch; left undefined, the template sees `enable_thinking` as undefined, as in HF */
  enableThinking?: boolean;
  /** JSON-schema tool descriptions ({type: 'function', function: {...}}) */
  tools?: unknown[] | null;
  documents?: unknown[] | null;
  /** any further template variables (HF's **kwargs) */
  extra?: Record<string, unknown>;
}

/**
 * Finds a model folder's chat template in the order transformers' processor does: the legacy chat_template.json,
 * then chat_template.jinja; then, as the tokenizer would, `chat_template` in tokenizer_config.json (a string, or a
 * list of {name, template} whose "default" is used).
 */
export function loadChatTemplate(dir: string): string {
  const legacy = path.join(dir, 'chat_template.json');
  if (fs.existsSync(legacy)) {
    const json: unknown = JSON.parse(fs.readFileSync(legacy, 'utf8'));
    if (!isObject(json) || typeof json.chat_template !== 'string') throw new ProcessorError(`${legacy}: expected {"chat_template": "<jinja text>"}`);
    return json.chat_template;
  }
  const jinja = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinja)) return fs.readFileSync(jinja, 'utf8');
  const cfgFile = path.join(dir, 'tokenizer_config.json');
  if (fs.existsSync(cfgFile)) {
    const cfg: unknown = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    const t = isObject(cfg) ? cfg.chat_template : undefined;
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      const def = t.find((e) => isObject(e) && e.name === 'default');
      if (isObject(def) && typeof def.template === 'string') return def.template;
      throw new ProcessorError(`${cfgFile}: chat_template has several templates but none named "default"`);
    }
  }
  throw new ProcessorError(`${dir}: no chat template (looked for chat_template.json, chat_template.jinja, and chat_template in tokenizer_config.json)`);
}

/** What a template may see: JSON data only. Other objects (images, typed arrays) become "<TypeName>", as in HF. */
function plainTemplateData(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map(plainTemplateData);
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, plainTemplateData(v)]));
  }
  return `<${(value as object).constructor?.name ?? 'object'}>`;
}

/**
 * HF's message normalisation before rendering: drop keys whose value is null/undefined; OpenAI `image_url` parts
 * become `{type: 'image', url}`; `reasoning_content` is filled from `thinking` / `reasoning` and copied to `thinking`.
 */
export function normalizeMessages(messages: ChatMessage[]): Record<string, unknown>[] {
  return messages.map((m, i) => {
    if (!isObject(m)) throw new ProcessorError(`chat message ${i}: expected an object, got ${JSON.stringify(m)}`);
    let msg: Record<string, unknown> = Object.fromEntries(Object.entries(m).filter(([, v]) => v !== null && v !== undefined));
    if (Array.isArray(msg.content)) {
      msg.content = msg.content.map((part) => {
        if (isObject(part) && part.type === 'image_url' && 'image_url' in part) {
          const info = part.image_url;
          return { type: 'image', url: isObject(info) ? (info.url ?? '') : info };
        }
        return part;
      });
    }
    msg = plainTemplateData(msg) as Record<string, unknown>;
    const reasoning = ['reasoning_content', 'thinking', 'reasoning'].map((k) => msg[k]).find((v) => v !== null && v !== undefined);
    if (reasoning !== undefined) msg = { thinking: reasoning, ...msg, reasoning_content: reasoning };
    return msg;
  });
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(readonly source: string) {
    this.template = new Template(source);
  }

  static fromPretrained(dir: string): ChatTemplate {
    return new ChatTemplate(loadChatTemplate(dir));
  }

  /**
   * Renders one conversation with the variables HF passes: messages, tools, documents, add_generation_prompt, the
   * tokenizer's named special tokens (eos_token, pad_token, …), enable_thinking when given, and `extra`.
   */
  render(messages: ChatMessage[], opts: ChatTemplateOptions = {}, specialTokens: Record<string, string> = {}): string {
    const vars: Record<string, unknown> = {
      ...specialTokens,
      ...plainTemplateData(opts.extra ?? {}) as Record<string, unknown>,
      messages: normalizeMessages(messages),
      tools: plainTemplateData(opts.tools ?? null),
      documents: plainTemplateData(opts.documents ?? null),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
    };
    if (opts.enableThinking !== undefined) vars.enable_thinking = opts.enableThinking;
    try {
      return this.template.render(vars);
    } catch (e) {
      throw new ProcessorError(`chat template: ${(e as Error).message}`);
    }
  }
}
