// The page of `glm46v web`: loads the built-in model, takes an image (picker or drop) and a question, and streams
// the answer; errors (a corrupt image, a missing model file) are shown and leave the loaded model in place.
import * as api from './browser';
import type { RgbImage } from '../processors/image_io';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
let session: api.Session | undefined;
let image: RgbImage | undefined;
let backend = '';
let loads = 0;

function showError(e: unknown): void {
  const box = $('error');
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

const clearError = () => ($('error').hidden = true);

/** Fetches and opens a model folder; the one loaded before stays in use when this fails. */
async function loadModel(url: string): Promise<void> {
  clearError();
  const status = $('status');
  try {
    const dir = await api.fetchModel(url, `page/${++loads}`, (file, loaded, total) => {
      status.textContent = `loading ${file.split('/').pop()}: ${(loaded / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`;
    });
    const next = api.openSession(dir);
    session?.model.dispose();
    session = next;
    status.textContent = `model ${url} loaded`;
  } catch (e) {
    status.textContent = session ? `still using the model loaded before` : 'no model loaded';
    showError(e);
  }
  ($('go') as HTMLButtonElement).disabled = !session;
}

/** Decodes an image through the package's own PNG/JPEG decoders, as Node does. */
async function takeImage(file: Blob, name: string): Promise<void> {
  clearError();
  try {
    image = api.decodeImage(new Uint8Array(await file.arrayBuffer()), name);
    ($('preview') as HTMLImageElement).src = URL.createObjectURL(file);
  } catch (e) {
    image = undefined;
    $('preview').removeAttribute('src');
    showError(e);
  }
}

async function ask(): Promise<void> {
  clearError();
  const out = $('answer'), go = $('go') as HTMLButtonElement;
  if (!session) return showError('no model loaded');
  out.textContent = '';
  go.disabled = true;
  document.body.dataset.state = 'answering';
  try {
    const q = ($('question') as HTMLInputElement).value;
    const stats = await api.answer(session, image ? [image] : [], q, (delta) => (out.textContent += delta));
    $('stats').textContent = `${stats.tokens} tokens, prefill ${stats.prefillMs.toFixed(0)} ms, ${stats.tokensPerSecond.toFixed(1)} tokens/s on ${backend}`;
  } catch (e) {
    showError(e);
  } finally {
    go.disabled = false;
    document.body.dataset.state = 'idle';
  }
}

function wire(): void {
  $('file').addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) void takeImage(f, f.name);
  });
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => (ev.preventDefault(), drop.classList.add('over')));
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer?.files[0];
    if (f) void takeImage(f, f.name);
  });
  $('ask').addEventListener('submit', (ev) => (ev.preventDefault(), void ask()));
  $('load').addEventListener('submit', (ev) => (ev.preventDefault(), void loadModel(($('model-url') as HTMLInputElement).value)));
}

async function start(): Promise<void> {
  wire();
  const only = params.get('backend');
  const choice = await api.initBackend('wasm/', only === 'wasm' || only === 'webgpu' ? only : undefined);
  backend = choice.name;
  $('backend').textContent = `backend: ${choice.name}${choice.why ? ` (webgpu: ${choice.why})` : ''}`;
  await loadModel(params.get('model') ?? 'model/');
  const example = params.get('image');
  if (example) await takeImage(await (await fetch(example)).blob(), example);
  document.body.dataset.state = 'idle';
}

// the specs drive the page through these, as a user would through the form
Object.assign(window, { glm46v: api, page: { takeImage, ask, loadModel, backend: () => backend } });
start().catch((e) => {
  showError(e);
  document.body.dataset.state = 'failed';
});
