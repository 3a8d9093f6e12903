// The README's picture of the page (docs/web.png): glm46v web, headless Chromium, count.png and its question.
// Run: npx tsx scripts/web/screenshot.ts (after node scripts/web/build.mjs).
import * as path from 'path';
import { ask, launch, openPage, serve, chooseImage } from './harness';

async function main(): Promise<void> {
  const served = await serve(120);
  const browser = await launch();
  try {
    const { page } = await openPage(browser, served.url);
    await page.setViewportSize({ width: 760, height: 640 });
    await chooseImage(page, path.join(__dirname, '..', '..', 'assets', 'examples', 'count.png'));
    const r = await ask(page, 'How many shapes are there?');
    await page.screenshot({ path: path.join(__dirname, '..', '..', 'docs', 'web.png'), fullPage: true });
    console.log(`docs/web.png: answer ${JSON.stringify(r.answer)} (${r.stats})`);
  } finally {
    await browser.close();
    served.child.kill('SIGTERM');
  }
}

void main();
