// processors/tool_parser.ts: GLM tool calls and reasoning out of generated text, whole and streamed.
import { expect } from 'chai';
import { ParserEvent, ToolCallParser, ToolParserOptions, collectEvents, parseGeneratedText, parseToolCallBody } from '../../processors/tool_parser';

const TOOLS = [{ type: 'function', function: { name: 'count_shapes', parameters: { type: 'object', properties: {
  colour: { type: 'string' }, min_size: { type: 'integer' }, label: { type: 'string' }, opts: { type: 'object' } } } } }];

function ids(): () => string {
  let n = 0;
  return () => `call_${n++}`;
}

const parse = (text: string, opts: ToolParserOptions = {}) => parseGeneratedText(text, { tools: TOOLS, makeId: ids(), ...opts });

/** Feeds `text` in the given pieces and returns every event plus the collected answer. */
function streamed(pieces: string[], opts: ToolParserOptions = {}): { events: ParserEvent[]; answer: ReturnType<typeof collectEvents> } {
  const p = new ToolCallParser({ tools: TOOLS, makeId: ids(), ...opts });
  const events = [...pieces.flatMap((x) => p.push(x)), ...p.finish()];
  return { events, answer: collectEvents(events) };
}

const NEWLINES = 'I will count.\n<tool_call>count_shapes\n<arg_key>colour</arg_key>\n<arg_value>red</arg_value>\n<arg_key>min_size</arg_key>\n<arg_value>2</arg_value>\n</tool_call>';
const COMPACT = 'I will count.<tool_call>count_shapes<arg_key>colour</arg_key><arg_value>red</arg_value><arg_key>min_size</arg_key><arg_value>2</arg_value></tool_call>';

describe('processors/tool_parser', () => {
  it('reads a tool call written with newlines (GLM-4.5) and compactly (later templates) the same way', () => {
    for (const text of [NEWLINES, COMPACT]) {
      expect(parse(text)).to.deep.equal({
        content: 'I will count.',
        reasoning_content: null,
        tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'count_shapes', arguments: '{"colour":"red","min_size":2}' } }],
      });
    }
  });

  it('decodes values as JSON where they are JSON, keeps string-typed parameters and non-JSON text as strings', () => {
    const body = 'count_shapes<arg_key>label</arg_key><arg_value>42</arg_value><arg_key>min_size</arg_key><arg_value>3</arg_value>'
      + '<arg_key>opts</arg_key><arg_value>{"a": [1, true, null]}</arg_value><arg_key>other</arg_key><arg_value>two words</arg_value>'
      + '<arg_key>flag</arg_key><arg_value>false</arg_value>';
    const args = JSON.parse(parseToolCallBody(body, TOOLS)!.arguments) as Record<string, unknown>;
    expect(args).to.deep.equal({ label: '42', min_size: 3, opts: { a: [1, true, null] }, other: 'two words', flag: false });
  });

  it('splits off <think> reasoning, and reads several calls with empty content as null', () => {
    const text = '\n<think>\nTwo calls needed.\n</think>\n<tool_call>a\n</tool_call>\n<tool_call>b<arg_key>x</arg_key><arg_value>1</arg_value></tool_call>\n';
    const r = parse(text);
    expect(r.reasoning_content).to.equal('Two calls needed.');
    expect(r.content).to.equal(null);
    expect(r.tool_calls.map((c) => [c.id, c.function.name, c.function.arguments])).to.deep.equal([['call_0', 'a', '{}'], ['call_1', 'b', '{"x":1}']]);
  });

  it('gives plain text as content, and an empty answer as ""', () => {
    expect(parse('  2\n')).to.deep.equal({ content: '2', reasoning_content: null, tool_calls: [] });
    expect(parse('')).to.deep.equal({ content: '', reasoning_content: null, tool_calls: [] });
  });

  for (const [what, text] of [
    ['a call without a name', 'x <tool_call><arg_key>a</arg_key><arg_value>1</arg_value></tool_call>'],
    ['a name with a space', 'x <tool_call>two words</tool_call>'],
    ['a key without a value', 'x <tool_call>f<arg_key>a</arg_key></tool_call>'],
    ['stray text after the name', 'x <tool_call>f\nhello<arg_key>a</arg_key><arg_value>1</arg_value></tool_call>'],
    ['a call that never closes', 'x <tool_call>f<arg_key>a</arg_key><arg_value>1'],
  ] as const) {
    it(`keeps ${what} as content, whole and streamed, without throwing`, () => {
      expect(parse(text)).to.deep.equal({ content: text, reasoning_content: null, tool_calls: [] });
      expect(streamed([...text]).answer.content).to.equal(text);
    });
  }

  it('with parseTools false (tool_choice none) leaves the markup in the content', () => {
    expect(parse(COMPACT, { parseTools: false })).to.deep.equal({ content: COMPACT, reasoning_content: null, tool_calls: [] });
  });

  it('starts inside the reasoning when the prompt opened <think>', () => {
    expect(parse('hmm</think>ok', { startInReasoning: true })).to.deep.equal({ content: 'ok', reasoning_content: 'hmm', tool_calls: [] });
    expect(parse('still thinking', { startInReasoning: true })).to.deep.equal({ content: '', reasoning_content: 'still thinking', tool_calls: [] });
  });

  const samples = [NEWLINES, COMPACT, '<think>a < b</think> x <tool_call>bad</tool_call>\n<tool_call>count_shapes</tool_call> tail <tool_',
    'x <tool_call><arg_key>a</arg_key></tool_call>', ' <thinking> is not <think>'];
  it('gives the same answer for a text split at every character boundary, and into single characters', () => {
    for (const text of samples) {
      const whole = parse(text);
      for (let i = 0; i <= text.length; i++) {
        for (let j = i; j <= text.length; j++) {
          expect(streamed([text.slice(0, i), text.slice(i, j), text.slice(j)]).answer, `${JSON.stringify(text)} at ${i},${j}`).to.deep.equal(whole);
        }
      }
      expect(streamed([...text]).answer).to.deep.equal(whole);
    }
  });

  it('never lets a partial <tool_call> or </think> tag into a streamed delta', () => {
    for (const text of samples) {
      const { events } = streamed([...text]);
      const { answer } = streamed([text]);
      for (const e of events) {
        if (e.kind === 'tool_call') continue;
        // every emitted content piece is a piece of the final content: no partial tag that was later taken back
        expect((e.kind === 'content' ? answer.content : answer.reasoning_content) ?? '').to.include(e.text);
      }
    }
    const { events } = streamed([...NEWLINES]);
    const contentPieces = events.filter((e) => e.kind === 'content').map((e) => (e as { text: string }).text);
    expect(contentPieces.join('')).to.equal('I will count.');
    expect(contentPieces.some((t) => t.includes('<'))).to.equal(false);
  });

  it('emits each tool call as one event as soon as its </tool_call> arrives', () => {
    const p = new ToolCallParser({ tools: TOOLS, makeId: ids() });
    const cut = COMPACT.length - 1;
    expect(p.push(COMPACT.slice(0, cut)).filter((e) => e.kind === 'tool_call')).to.have.length(0);
    const last = p.push(COMPACT.slice(cut));
    expect(last).to.deep.equal([{ kind: 'tool_call', index: 0, call: { id: 'call_0', type: 'function', function: { name: 'count_shapes', arguments: '{"colour":"red","min_size":2}' } } }]);
  });
});
