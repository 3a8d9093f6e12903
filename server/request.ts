// Validation of a POST /v1/chat/completions body (OpenAI's chat completions schema) into what the scheduler runs.
// Every refusal is an ApiError naming the field; parameters we cannot honour are refused, never silently ignored.
import { isObject } from '../lib/config';
import type { ChatMessage, ContentPart } from '../processors/chat_template';
import { ApiError } from './errors';

export interface SamplingRequest {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  stop: string[];
}

export interface ChatRequest extends SamplingRequest {
  model: string;
  /** OpenAI messages; image and video parts still carry their url (resolved by images.ts, videos.ts) */
  messages: ChatMessage[];
  tools: unknown[] | null;
  /** 'none': tools are shown to the model but its tool-call markup is returned as text */
  toolChoice: 'auto' | 'none';
  /** chat_template_kwargs: further template variables (enable_thinking, ...) */
  templateKwargs: Record<string, unknown>;
  stream: boolean;
  includeUsage: boolean;
}

/** Accepted only at their neutral value: any other value asks for something this server does not do. */
const NEUTRAL: Record<string, (v: unknown) => boolean> = {
  n: (v) => v === 1,
  logprobs: (v) => v === false,
  presence_penalty: (v) => v === 0,
  frequency_penalty: (v) => v === 0,
  parallel_tool_calls: (v) => typeof v === 'boolean',
  response_format: (v) => isObject(v) && v.type === 'text',
};
/** Accepted and without effect on the answer. */
const IGNORED = new Set(['user', 'metadata', 'store', 'service_tier']);
const HANDLED = new Set(['model', 'messages', 'max_tokens', 'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stop',
  'tools', 'tool_choice', 'chat_template_kwargs', 'stream', 'stream_options']);

function num(body: Record<string, unknown>, key: string, check: (v: number) => boolean, want: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new ApiError(400, `${key} must be ${want}, got ${JSON.stringify(v)}`, key);
  return v;
}

function parseStop(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s === '')) {
    throw new ApiError(400, 'stop must be a non-empty string or a list of at most 4 of them', 'stop');
  }
  return list as string[];
}

function parseTools(v: unknown): unknown[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new ApiError(400, 'tools must be a list', 'tools');
  v.forEach((t, i) => {
    const f = isObject(t) ? t.function : undefined;
    if (!isObject(t) || t.type !== 'function' || !isObject(f) || typeof f.name !== 'string' || !f.name) {
      throw new ApiError(400, `tools[${i}] must be {"type": "function", "function": {"name": ..., "parameters": ...}}`, `tools[${i}]`);
    }
  });
  return v.length ? v : null;
}

function parseToolChoice(v: unknown): 'auto' | 'none' {
  if (v === undefined || v === null || v === 'auto') return 'auto';
  if (v === 'none') return 'none';
  throw new ApiError(400, `tool_choice ${JSON.stringify(v)} is not supported: use "auto" or "none"`, 'tool_choice');
}

/** An assistant's tool call with its JSON-string arguments parsed, as the chat template iterates them. */
function toolCallForTemplate(tc: unknown, where: string): unknown {
  const f = isObject(tc) ? tc.function : undefined;
  if (!isObject(f) || typeof f.name !== 'string') throw new ApiError(400, `${where} must have function.name`, where);
  let args: unknown = f.arguments ?? {};
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args || '{}');
    } catch {
      throw new ApiError(400, `${where}.function.arguments is not valid JSON`, `${where}.function.arguments`);
    }
  }
  if (!isObject(args)) throw new ApiError(400, `${where}.function.arguments must be a JSON object`, `${where}.function.arguments`);
  return { ...tc as object, function: { ...f, arguments: args } };
}

function contentPart(p: unknown, where: string): ContentPart {
  if (!isObject(p) || typeof p.type !== 'string') throw new ApiError(400, `${where} must be an object with a type`, where);
  if (p.type === 'text') {
    if (typeof p.text !== 'string') throw new ApiError(400, `${where}.text must be a string`, `${where}.text`);
    return { type: 'text', text: p.text };
  }
  if (p.type === 'image_url') {
    const url = isObject(p.image_url) ? p.image_url.url : p.image_url;
    if (typeof url !== 'string' || !url) throw new ApiError(400, `${where}.image_url.url must be a string`, `${where}.image_url`);
    return { type: 'image', url };
  }
  if (p.type === 'video_url') {
    const url = isObject(p.video_url) ? p.video_url.url : p.video_url;
    if (typeof url !== 'string' || !url) throw new ApiError(400, `${where}.video_url.url must be a string`, `${where}.video_url`);
    return { type: 'video', url };
  }
  throw new ApiError(400, `${where}: content type ${JSON.stringify(p.type)} is not supported (text, image_url, video_url)`, where);
}

function message(m: unknown, i: number): ChatMessage {
  const where = `messages[${i}]`;
  if (!isObject(m)) throw new ApiError(400, `${where} must be an object`, where);
  const role = m.role === 'developer' ? 'system' : m.role;
  if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'tool') {
    throw new ApiError(400, `${where}.role must be system, user, assistant or tool, got ${JSON.stringify(m.role)}`, `${where}.role`);
  }
  const out: ChatMessage = { role };
  const c = m.content;
  if (typeof c === 'string') out.content = c;
  else if (Array.isArray(c)) out.content = c.map((p, j) => contentPart(p, `${where}.content[${j}]`));
  else if (c !== undefined && c !== null) throw new ApiError(400, `${where}.content must be a string or a list of parts`, `${where}.content`);
  else if (role !== 'assistant') throw new ApiError(400, `${where}.content is required`, `${where}.content`);
  if (role !== 'user' && Array.isArray(out.content) && out.content.some((p) => p.type !== 'text')) {
    throw new ApiError(400, `${where}: only user messages may carry images and videos`, `${where}.content`);
  }
  if (role === 'assistant' && Array.isArray(m.tool_calls)) out.tool_calls = m.tool_calls.map((tc, j) => toolCallForTemplate(tc, `${where}.tool_calls[${j}]`));
  if (role === 'assistant' && typeof m.reasoning_content === 'string') out.reasoning_content = m.reasoning_content;
  if (role === 'tool' && typeof m.tool_call_id === 'string') out.tool_call_id = m.tool_call_id;
  return out;
}

/** Checks a parsed JSON body; throws ApiError(400) naming the first bad or unsupported field. */
export function parseChatRequest(body: unknown): ChatRequest {
  if (!isObject(body)) throw new ApiError(400, 'the request body must be a JSON object');
  for (const [k, v] of Object.entries(body)) {
    if (HANDLED.has(k) || IGNORED.has(k) || v === null) continue;
    const neutral = NEUTRAL[k];
    if (!neutral) throw new ApiError(400, `unsupported parameter: ${k}`, k, 'unsupported_parameter');
    if (!neutral(v)) throw new ApiError(400, `unsupported value for ${k}: ${JSON.stringify(v)}`, k, 'unsupported_parameter');
  }
  if (typeof body.model !== 'string' || !body.model) throw new ApiError(400, 'model is required', 'model');
  if (!Array.isArray(body.messages) || body.messages.length === 0) throw new ApiError(400, 'messages must be a non-empty list', 'messages');
  const kwargs = body.chat_template_kwargs ?? {};
  if (!isObject(kwargs)) throw new ApiError(400, 'chat_template_kwargs must be an object', 'chat_template_kwargs');
  const so = body.stream_options;
  if (so !== undefined && so !== null && !isObject(so)) throw new ApiError(400, 'stream_options must be an object', 'stream_options');
  const maxTokens = num(body, 'max_completion_tokens', (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1')
    ?? num(body, 'max_tokens', (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  const req: ChatRequest = {
    model: body.model,
    messages: body.messages.map(message),
    tools: parseTools(body.tools),
    toolChoice: parseToolChoice(body.tool_choice),
    templateKwargs: kwargs,
    stream: body.stream === true,
    includeUsage: isObject(so) && so.include_usage === true,
    stop: parseStop(body.stop),
  };
  const opt = {
    maxTokens,
    temperature: num(body, 'temperature', (v) => v >= 0 && v <= 2, 'a number in [0, 2]'),
    topP: num(body, 'top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]'),
    seed: num(body, 'seed', (v) => Number.isInteger(v), 'an integer'),
  };
  for (const [k, v] of Object.entries(opt)) if (v !== undefined) (req as unknown as Record<string, unknown>)[k] = v;
  return req;
}
