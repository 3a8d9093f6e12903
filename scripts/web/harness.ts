// The web specs' harness: `glm46v web --port 0` as a child process (it stops by itself after --exit-after) and
// Debian's chromium driven headless by playwright-core (the system browser: nothing downloaded).
import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';
import { Browser, chromium, Page } from 'playwright-core';

const ROOT = path.join(__dirname, '..', '..');

export interface Served {
  url: string;
  child: ChildProcess;
}

/** Starts the server on a free port and resolves with its URL (the line it prints). */
export function serve(exitAfterS = 600): Promise<Served> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cli', 'main.ts'), 'web', '--port', '0', '--exit-after', String(exitAfterS)], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '', err = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (m) resolve({ url: m[0], child });
    });
    child.stderr!.on('data', (c: Buffer) => (err += c));
    child.once('exit', (code) => reject(new Error(`glm46v web exited (${code}) before listening: ${err.trim()}`)));
  });
}

/**
 * Chromium with WebGPU on (--enable-unsafe-webgpu: headless on Linux it is off otherwise; SwiftShader's adapter where
 * there is no GPU); GLM46V_WEB_WEBGPU=0 leaves it off, as a user's Chromium on Linux starts.
 */
export function launch(): Promise<Browser> {
  const args = [...(process.env.GLM46V_WEB_WEBGPU !== '0' ? ['--enable-unsafe-webgpu'] : []), ...(process.getuid?.() === 0 ? ['--no-sandbox'] : [])];
  return chromium.launch({ executablePath: process.env.GLM46V_CHROMIUM ?? '/usr/bin/chromium', headless: true, args });
}

/** A page of the server, with its console errors and page errors collected (a spec prints them when it fails). */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; log: string[] }> {
  const page = await browser.newPage();
  const log: string[] = [];
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && log.push(`console: ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state === 'idle' || document.body.dataset.state === 'failed', null, { timeout: 120000 });
  return { page, log };
}

/** Picks an image file through the page's file input, as a user does. */
export async function chooseImage(page: Page, file: string | { name: string; mimeType: string; buffer: Buffer }): Promise<void> {
  await page.setInputFiles('#file', file);
  await page.waitForFunction(() => document.getElementById('preview')!.hasAttribute('src') || !document.getElementById('error')!.hidden);
}

/** Types a question, presses Ask and waits for the streamed answer to finish; returns the answer and the stats line. */
export async function ask(page: Page, question: string): Promise<{ answer: string; stats: string; error: string | null; chunks: number }> {
  await page.fill('#question', question);
  await page.evaluate(() => {
    const w = window as unknown as { chunks: number };
    w.chunks = 0;
    new MutationObserver(() => w.chunks++).observe(document.getElementById('answer')!, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#go'); // the submit handler marks the page 'answering' before its first await
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 120000 });
  const error = await page.evaluate(() => (document.getElementById('error')!.hidden ? null : document.getElementById('error')!.textContent));
  return {
    answer: (await page.textContent('#answer')) ?? '', stats: (await page.textContent('#stats')) ?? '', error,
    chunks: await page.evaluate(() => (window as unknown as { chunks: number }).chunks),
  };
}
