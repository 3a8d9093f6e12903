// The package in real Chromium (scripts/web/test_web.sh runs this once in `npm test`): the page answers from a
// picture and keeps working, pixel values and parity lines equal Node's, and errors are shown without breaking it.
// WebGPU runs where the browser offers an adapter; where it does not, the spec prints that it was skipped and why.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import type { Browser, Page } from 'playwright-core';
import { formatParity, runParity } from '../../cli/parity_runner';
import { generateGreedy } from '../../cli/parity_generate';
import { readAllSafetensors } from '../../lib/safetensors';
import { loadModel } from '../../models/glm4v/auto';
import { loadImage } from '../../processors/image_io';
import { Glm46VImageProcessor } from '../../processors/image_processor';
import { loadProcessor } from '../../processors/processor';
import { ask, chooseImage, launch, openPage, serve, Served } from './harness';

const ROOT = path.join(__dirname, '..', '..');
const MODEL = path.join(ROOT, 'assets', 'model');
const EXAMPLES = path.join(ROOT, 'assets', 'examples');
/** The reference suite's core files: text, image with gradients, greedy generation, video. */
const PARITY_FILES = ['text/tiny_a_batch.safetensors', 'model/tiny_a_image.safetensors', 'model/gen_image.safetensors', 'video/model_video.safetensors'];

/** Node's lines for a reference file, through the same runner and formatter as the page. */
async function nodeParity(rel: string): Promise<string[]> {
  const file = path.join(ROOT, 'spec', 'fixtures', rel);
  const { tensors, metadata } = readAllSafetensors(file);
  const model = loadModel(path.resolve(path.dirname(file), metadata.model!));
  try {
    return formatParity(await runParity(model, tensors, { atol: 1e-4, rtol: 0, generate: generateGreedy }), 1e-4, 0);
  } finally {
    model.dispose();
  }
}

/** What must agree between two parity tables: each row's name, shape and ok, and the summary's count. */
const verdicts = (lines: string[]) => lines.slice(1, -1).map((l) => l.split(/\s{2,}/).filter((c, i) => i !== 2 && i !== 3).join(' | '))
  .concat(lines.at(-1)!.replace(/; worst .*/, ''));

describe('glm46v in Chromium (headless, real browser)', function () {
  let served: Served, browser: Browser, page: Page, log: string[];
  const pageUrl = (q = '') => `${served.url}${q}`;

  before(async function () {
    this.timeout(180000);
    served = await serve();
    browser = await launch();
    ({ page, log } = await openPage(browser, pageUrl('?backend=wasm')));
  });
  after(async () => {
    await browser?.close();
    served?.child.kill('SIGTERM');
  });
  afterEach(function () {
    if (this.currentTest?.state === 'failed' && log.length) console.log(`      page log:\n        ${log.join('\n        ')}`);
  });

  it('loads the built-in model on wasm and says which backend', async () => {
    const backend = (await page.textContent('#backend')) ?? '';
    expect(backend).to.match(/^backend: wasm/);
    expect(await page.textContent('#status')).to.equal('model model/ loaded');
    console.log(`      ${backend}`);
  });

  it('answers "2" for count.png and "How many shapes are there?", streaming, with tokens/s; then a second question', async () => {
    await chooseImage(page, path.join(EXAMPLES, 'count.png'));
    const first = await ask(page, 'How many shapes are there?');
    expect(first.error).to.equal(null);
    expect(first.answer.trim()).to.equal('2');
    expect(first.chunks).to.be.greaterThan(0);
    expect(first.stats).to.match(/^\d+ tokens, prefill \d+ ms, [\d.]+ tokens\/s on (wasm|webgpu)$/);
    await chooseImage(page, path.join(EXAMPLES, 'position.png'));
    const second = await ask(page, 'Is the square on the left or the right?');
    expect(second.error).to.equal(null);
    expect(second.answer.trim()).to.equal('left');
    console.log(`      "${first.answer.trim()}" (${first.stats}); "${second.answer.trim()}" (${second.stats})`);
  });

  it('gives pixel_values bit-identical to Node for a PNG and a progressive JPEG', async () => {
    const processor = loadProcessor(MODEL, Glm46VImageProcessor.fromPretrained(MODEL));
    for (const file of [path.join(EXAMPLES, 'shapes.png'), path.join(ROOT, 'spec', 'fixtures', 'images', 'progressive.jpg')]) {
      const node = processor.call({ text: ['<|begin_of_image|><|image|><|end_of_image|>'], images: [loadImage(file)] }).pixelValues!;
      const bytes = [...fs.readFileSync(file)];
      const browserBits = await page.evaluate(async (b) => {
        const g = (window as unknown as { glm46v: typeof import('../../web/browser'); page: { session: () => unknown } }).glm46v;
        const s = g.openSession('page/1');
        try {
          return Array.from(new Uint32Array(g.pixelValues(s, g.decodeImage(new Uint8Array(b), 'img')).buffer));
        } finally {
          s.model.dispose();
        }
      }, bytes);
      const nodeBits = Array.from(new Uint32Array(node.buffer, node.byteOffset, node.length));
      expect(browserBits.length, path.basename(file)).to.equal(nodeBits.length);
      const firstDiff = nodeBits.findIndex((v, i) => v !== browserBits[i]);
      expect(firstDiff, `${path.basename(file)}: first differing value at ${firstDiff}`).to.equal(-1);
      console.log(`      ${path.basename(file)}: ${nodeBits.length} values, bit-identical`);
    }
  });

  for (const rel of PARITY_FILES) {
    it(`parity on ${rel}: the same lines as glm46v parity in Node (wasm)`, async () => {
      const inPage = await page.evaluate((u) => (window as unknown as { glm46v: typeof import('../../web/browser') }).glm46v.parity(u), `fixtures/${rel}`);
      const inNode = await nodeParity(rel);
      expect(verdicts(inPage)).to.deep.equal(verdicts(inNode));
      expect(inPage.at(-1)).to.match(/^parity: (\d+)\/\1 tensors/);
      const same = inPage.join('\n') === inNode.join('\n') ? 'identical to Node, numbers included' : 'same names and verdicts as Node';
      console.log(`      ${inPage.at(-1)} (${same})`);
    });
  }

  it('webgpu: the same parity lines where the browser offers WebGPU, else a line saying why it was skipped', async () => {
    // asked in the served page: navigator.gpu exists only in a secure context (127.0.0.1 is one, about:blank not)
    const why = await page.evaluate(async () => {
      const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
      if (!gpu) return 'this Chromium offers no navigator.gpu';
      return (await gpu.requestAdapter().catch(() => null)) ? null : 'navigator.gpu.requestAdapter() found no adapter';
    });
    if (why) {
      const hint = process.env.GLM46V_WEB_WEBGPU !== '0' ? '' : ' (started without --enable-unsafe-webgpu: GLM46V_WEB_WEBGPU=0)';
      console.log(`      webgpu: skipped, ${why}${hint}; the wasm runs above are the browser's result`);
      return;
    }
    const { page: wp, log: wlog } = await openPage(browser, pageUrl('?backend=webgpu'));
    try {
      expect(await wp.textContent('#backend'), wlog.join('\n')).to.equal('backend: webgpu');
      for (const rel of PARITY_FILES) {
        const inPage = await wp.evaluate((u) => (window as unknown as { glm46v: typeof import('../../web/browser') }).glm46v.parity(u), `fixtures/${rel}`);
        console.log(`      webgpu ${rel}: ${inPage.at(-1)}`);
        expect(verdicts(inPage), rel).to.deep.equal(verdicts(await nodeParity(rel)));
      }
    } finally {
      await wp.close();
    }
  });

  it('shows a corrupt image and a missing model file as errors, and still answers afterwards', async () => {
    const png = fs.readFileSync(path.join(EXAMPLES, 'count.png'));
    await chooseImage(page, { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.concat([png.subarray(0, 60), Buffer.alloc(40, 7)]) });
    expect(await page.isVisible('#error')).to.equal(true);
    expect(await page.textContent('#error')).to.match(/^broken\.png: (corrupt PNG|.*truncated|.*)/).and.to.include('broken.png');
    await page.click('details summary');
    await page.fill('#model-url', 'examples/');
    await page.click('#load button');
    await page.waitForFunction(() => !document.getElementById('error')!.hidden);
    expect(await page.textContent('#error')).to.match(/examples\/config\.json: HTTP 404/);
    expect(await page.textContent('#status')).to.equal('still using the model loaded before');
    await chooseImage(page, path.join(EXAMPLES, 'count.png'));
    expect(await page.isVisible('#error')).to.equal(false);
    const again = await ask(page, 'How many shapes are there?');
    expect(again.error).to.equal(null);
    expect(again.answer.trim()).to.equal('2');
  });
});
