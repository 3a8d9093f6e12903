// Tool calling through glm46v serve with the openai client. The model's output is scripted (ServeOptions.script: the
// built-in model runs every step but the server emits these tokens instead of sampled ones), since the tiny built-in
// model was never trained to call tools; what is under test is the template, parser and response shapes around it.
import { expect } from 'chai';
import OpenAI from 'openai';
import { Running, startServer } from './helpers';

const TOOLS: OpenAI.ChatCompletionTool[] = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] } },
}];
const CALL = 'Let me look.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call>';
const QUESTION = 'What is the weather in Paris?';

describe('glm46v serve: tool calls with the openai client (scripted model output)', () => {
  let s: Running;
  const prompts: string[] = [];
  before(async () => {
    s = await startServer({
      script: (prompt) => {
        prompts.push(prompt);
        if (prompt.includes('<tool_response>')) return 'It is sunny, 21 degrees.';
        return prompt.includes(QUESTION) ? CALL : undefined;
      },
    });
  });
  after(async () => s.stop());

  const ask = (extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) =>
    s.client.chat.completions.create({ model: 'glm46v', messages: [{ role: 'user', content: QUESTION }], tools: TOOLS, ...extra });

  it('shows the tools to the model and returns its call as tool_calls with finish_reason tool_calls', async () => {
    const r = await ask();
    const prompt = prompts[prompts.length - 1]!;
    expect(prompt).to.include('<tools>\n{"type": "function", "function": {"name": "get_weather"');
    const c = r.choices[0]!;
    expect(c.finish_reason).to.equal('tool_calls');
    expect(c.message.content).to.equal('Let me look.');
    expect(c.message.tool_calls).to.have.length(1);
    const call = c.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(call.type).to.equal('function');
    expect(call.id).to.match(/^call_[0-9a-f]{24}$/);
    expect(call.function.name).to.equal('get_weather');
    // city is a string parameter, days decodes as JSON
    expect(JSON.parse(call.function.arguments)).to.deep.equal({ city: 'Paris', days: 2 });
  });

  it('streams the content, then the tool call as one delta, never a partial tag', async () => {
    const stream = await s.client.chat.completions.create({ model: 'glm46v', messages: [{ role: 'user', content: QUESTION }], tools: TOOLS, stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(content).to.equal('Let me look.');
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).to.have.length(1);
    expect(calls[0]!.index).to.equal(0);
    expect(calls[0]!.function!.name).to.equal('get_weather');
    expect(JSON.parse(calls[0]!.function!.arguments!)).to.deep.equal({ city: 'Paris', days: 2 });
    expect(chunks[chunks.length - 1]!.choices[0]!.finish_reason).to.equal('tool_calls');
  });

  it('takes the tool result back in and renders it as an observation for the next answer', async () => {
    const first = await ask();
    const assistant = first.choices[0]!.message;
    const call = assistant.tool_calls![0]!;
    const r = await s.client.chat.completions.create({
      model: 'glm46v', tools: TOOLS,
      messages: [
        { role: 'user', content: QUESTION },
        { role: 'assistant', content: assistant.content, tool_calls: assistant.tool_calls! },
        { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' },
      ],
    });
    expect(r.choices[0]!.message.content).to.equal('It is sunny, 21 degrees.');
    expect(r.choices[0]!.finish_reason).to.equal('stop');
    const prompt = prompts[prompts.length - 1]!;
    // the built-in template's tool turn: the call as the model wrote it, then the observation
    expect(prompt).to.include('<|assistant|>\nLet me look.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>2</arg_value>\n</tool_call><|observation|>\n<tool_response>sunny, 21 C</tool_response><|assistant|>\n');
  });

  it("with tool_choice 'none' returns the markup as text and no tool_calls", async () => {
    const r = await ask({ tool_choice: 'none' });
    expect(r.choices[0]!.message.content).to.equal(CALL);
    expect(r.choices[0]!.message.tool_calls).to.equal(undefined);
    expect(r.choices[0]!.finish_reason).to.equal('stop');
  });

  it('refuses tool_choice required and arguments that are not JSON', async () => {
    const bad = await ask({ tool_choice: 'required' }).catch((e: unknown) => e);
    expect(bad).to.be.instanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).message).to.include('tool_choice "required" is not supported');
    const args = await s.client.chat.completions.create({ model: 'glm46v', messages: [
      { role: 'user', content: 'x' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'a', type: 'function', function: { name: 'get_weather', arguments: '{city' } }] },
    ] }).catch((e: unknown) => e);
    expect(args).to.be.instanceOf(OpenAI.BadRequestError);
    expect((args as Error).message).to.include('messages[1].tool_calls[0].function.arguments is not valid JSON');
  });

  it('cuts the answer at a stop string, which is not returned', async () => {
    const r = await ask({ stop: ['look'] });
    expect(r.choices[0]!.message.content).to.equal('Let me');
    expect(r.choices[0]!.finish_reason).to.equal('stop');
  });
});
