// Mocha root hooks: one backend for the whole run (GLM46V_BACKEND, default wasm in tests), released at the end. A run
// that asked for a backend and got another fails at once: the suite must never pass on a fallback it did not ask for.
import * as tf from '@tensorflow/tfjs';
import { initBackend, setBackendPreference, shutdownBackend } from '../lib/backend';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120000);
    const want = process.env.GLM46V_BACKEND?.trim() || 'wasm';
    setBackendPreference(want as Parameters<typeof setBackendPreference>[0]);
    await initBackend();
    if (tf.getBackend() !== want) throw new Error(`the suite asked for backend '${want}' and got '${tf.getBackend()}'`);
  },
  afterAll() {
    shutdownBackend();
  },
};
