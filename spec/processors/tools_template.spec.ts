// Chat templates with tools against transformers' apply_chat_template (spec/fixtures/tools/templates.json, written
// by scripts/parity/cases_tools.py): the GLM-4.5V-style fixture template and the built-in model's own template.
import * as fs from 'fs';
import * as path from 'path';
import { expect } from 'chai';
import { ChatMessage, ChatTemplate } from '../../processors/chat_template';
import { Glm46VProcessor, loadProcessor } from '../../processors/processor';
import { GlmTokenizer } from '../../processors/tokenizer';
import { fixturePath } from '../helpers/fixtures';

interface Case {
  template: 'fixture' | 'builtin';
  name: string;
  messages: ChatMessage[];
  options: { add_generation_prompt: boolean; enable_thinking?: boolean; tools?: unknown[] };
  expected: string;
}

const file = fixturePath('tools', 'templates.json');
const fixture = JSON.parse(fs.readFileSync(file, 'utf8')) as { tiny_model: string; builtin_model: string; cases: Case[] };
const resolve = (rel: string) => path.resolve(path.dirname(file), rel);

describe('chat templates with tools (processor.applyChatTemplate vs transformers)', () => {
  const tinyDir = resolve(fixture.tiny_model);
  const template = new ChatTemplate(fs.readFileSync(fixturePath('tools', 'chat_template.jinja'), 'utf8'));
  const procs = {
    fixture: new Glm46VProcessor(GlmTokenizer.fromPretrained(tinyDir), template, null),
    builtin: loadProcessor(resolve(fixture.builtin_model), null),
  };

  for (const which of ['fixture', 'builtin'] as const) {
    it(`renders every ${which} case exactly as transformers does (tools, images, tool round trips, thinking switch)`, () => {
      const mine = fixture.cases.filter((c) => c.template === which);
      expect(mine.length).to.equal(48);
      for (const c of mine) {
        const o = c.options;
        const got = procs[which].applyChatTemplate(c.messages, {
          addGenerationPrompt: o.add_generation_prompt,
          ...(o.tools ? { tools: o.tools } : {}),
          // enable_thinking travels as any other template variable would
          ...(o.enable_thinking !== undefined ? { extra: { enable_thinking: o.enable_thinking } } : {}),
        });
        expect(got, `${which} ${c.name}`).to.equal(c.expected);
      }
    });
  }

  it('the fixture template switches thinking off with /nothink and an empty <think></think>', () => {
    const off = fixture.cases.find((c) => c.template === 'fixture' && c.name === 'round_trip_answered/thinking_off')!.expected;
    expect(off).to.include('And blue?/nothink<|assistant|>\n<think></think>');
    expect(off.match(/\/nothink/g)).to.have.length(2); // not doubled where the user already wrote it
    const on = fixture.cases.find((c) => c.template === 'fixture' && c.name === 'round_trip_answered/thinking_on')!.expected;
    expect(on.endsWith('<|assistant|>')).to.equal(true);
  });

  it('renders a tool round trip with one <|observation|> for consecutive tool results', () => {
    for (const which of ['fixture', 'builtin'] as const) {
      const rt = fixture.cases.find((c) => c.template === which && c.name === 'round_trip/default')!.expected;
      expect(rt.match(/<\|observation\|>/g), which).to.have.length(1);
      expect(rt.match(/<tool_response>/g), which).to.have.length(2);
      expect(rt).to.include('<arg_value>{"n": [1, 2.5], "x": null}</arg_value>');
    }
  });
});
