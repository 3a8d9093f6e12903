// ChatTemplate against transformers' apply_chat_template (spec/fixtures/processor/templates.json): the tiny GLM-style
// template (thinking switch, tools, reasoning) and the real GLM-4.1V-9B-Thinking chat_template.jinja.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { expect } from 'chai';
import { ChatMessage, ChatTemplate, loadChatTemplate } from '../../processors/chat_template';
import { GlmTokenizer, ProcessorError } from '../../processors/tokenizer';
import { fixturePath } from '../helpers/fixtures';

interface Case {
  template: 'tiny' | 'glm41v';
  name: string;
  messages: ChatMessage[];
  options: { add_generation_prompt: boolean; enable_thinking?: boolean; tools?: unknown[] };
  expected: string;
}
interface Cases { model: string; glm41v_template: string; cases: Case[] }

const file = fixturePath('processor', 'templates.json');
const cases = JSON.parse(fs.readFileSync(file, 'utf8')) as Cases;
const modelDir = path.resolve(path.dirname(file), cases.model);
const glm41vFile = path.resolve(path.dirname(file), cases.glm41v_template);

function render(t: ChatTemplate, c: Case, specials: Record<string, string>): string {
  const o = c.options;
  return t.render(c.messages, {
    addGenerationPrompt: o.add_generation_prompt,
    ...(o.enable_thinking !== undefined ? { enableThinking: o.enable_thinking } : {}),
    ...(o.tools ? { tools: o.tools } : {}),
  }, specials);
}

describe('processors/chat_template', () => {
  const specials = GlmTokenizer.fromPretrained(modelDir).specialTokensMap;
  const tiny = ChatTemplate.fromPretrained(modelDir);
  const glm41v = new ChatTemplate(fs.readFileSync(glm41vFile, 'utf8'));

  it('the GLM-4.1V-9B-Thinking template fixture is the official file, byte for byte', () => {
    const sha = crypto.createHash('sha256').update(fs.readFileSync(glm41vFile)).digest('hex');
    expect(sha).to.equal('847603d3ed14387a2b45c197f8d07ddee0f9938051549c727cbc894facfea78b');
  });

  for (const which of ['glm41v', 'tiny'] as const) {
    it(`renders the ${which} template exactly as transformers does`, () => {
      const mine = cases.cases.filter((c) => c.template === which);
      expect(mine.length).to.be.greaterThan(10);
      for (const c of mine) expect(render(which === 'tiny' ? tiny : glm41v, c, specials), `${which} ${c.name}`).to.equal(c.expected);
    });
  }

  it('switches thinking off with <think></think> after the generation prompt, and only then', () => {
    const pick = (name: string) => cases.cases.find((c) => c.template === 'tiny' && c.name === name)!;
    const off = render(tiny, pick('multi_turn/thinking_off'), specials);
    const on = render(tiny, pick('multi_turn/thinking_on'), specials);
    expect(off.endsWith('<|assistant|>\n<think></think>\n')).to.equal(true);
    expect(on.endsWith('<|assistant|>\n')).to.equal(true);
    expect(on).to.equal(render(tiny, pick('multi_turn/default'), specials));
  });

  it('finds the template in chat_template.json, then chat_template.jinja, then tokenizer_config.json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glm-tpl-'));
    try {
      expect(() => loadChatTemplate(dir)).to.throw(ProcessorError, `${dir}: no chat template`);
      fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'default', template: 'C' }] }));
      expect(loadChatTemplate(dir)).to.equal('C');
      fs.writeFileSync(path.join(dir, 'chat_template.jinja'), 'B');
      expect(loadChatTemplate(dir)).to.equal('B');
      fs.writeFileSync(path.join(dir, 'chat_template.json'), JSON.stringify({ chat_template: 'A' }));
      expect(loadChatTemplate(dir)).to.equal('A');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hides media objects from the template but keeps their keys', () => {
    const t = new ChatTemplate("{% for p in messages[0].content %}{{ 'image' in p }}:{{ p.image.width or p.image }}:{{ p.image.data }};{% endfor %}");
    const img = { width: 2, height: 1, data: new Uint8Array(6) };
    const out = t.render([{ role: 'user', content: [{ type: 'image', image: img }, { type: 'image', image: new Uint8Array(3) }] }]);
    expect(out).to.equal('true:2:<Uint8Array>;true:<Uint8Array>:;');
  });
});
