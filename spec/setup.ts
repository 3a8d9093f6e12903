// Mocha root hooks: one backend for the whole run (GLM46V_BACKEND, default wasm in tests), released at the end.
import { initBackend, setBackendPreference, shutdownBackend } from '../lib/backend';

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120000);
    if (!process.env.GLM46V_BACKEND) setBackendPreference('wasm');
    await initBackend();
  },
  afterAll() {
    shutdownBackend();
  },
};
