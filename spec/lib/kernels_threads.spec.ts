import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { requestedWasmThreads, setWasmThreads } from '../../lib/kernels/wasm_threads';

const CHILD = path.join(__dirname, '..', 'helpers', 'wasm_threads_child.ts');

/** Runs the child with GLM46V_WASM_THREADS set; a child that does not exit by itself is killed at the timeout. */
function runChild(threads: string) {
  const env = { ...process.env, GLM46V_WASM_THREADS: threads, GLM46V_BACKEND: 'wasm' };
  const r = spawnSync(process.execPath, ['-r', 'tsx/cjs', CHILD], { env, encoding: 'utf8', timeout: 120_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  return { status: r.status, signal: r.signal, stderr: r.stderr, result: line ? JSON.parse(line) : undefined };
}

describe('lib/kernels/wasm_threads: multi-threaded wasm in Node', () => {
  for (const threads of [2, 3]) {
    it(`GLM46V_WASM_THREADS=${threads} starts ${threads} threads (no idle workers kept), matches cpu, and the process exits by itself`, function () {
      this.timeout(180_000);
      const r = runChild(String(threads));
      expect(r.signal, `killed: it did not exit by itself\n${r.stderr}`).to.equal(null);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.result).to.include({ backend: 'wasm', threads });
      expect(r.result.workers).to.deep.equal({ running: threads - 1, idle: 0 });
      expect(r.result.maxDiff).to.be.lessThan(1e-4);
    });
  }

  it('rejects a malformed thread count, naming the variable and value', () => {
    const saved = process.env.GLM46V_WASM_THREADS;
    try {
      process.env.GLM46V_WASM_THREADS = 'two';
      expect(() => requestedWasmThreads()).to.throw(/GLM46V_WASM_THREADS=two.*integer in \[1, 8\]/);
      process.env.GLM46V_WASM_THREADS = '3';
      expect(requestedWasmThreads()).to.equal(3);
      delete process.env.GLM46V_WASM_THREADS;
      expect(requestedWasmThreads()).to.equal(1);
      expect(() => setWasmThreads(0)).to.throw(/setWasmThreads.*got 0/);
    } finally {
      if (saved === undefined) delete process.env.GLM46V_WASM_THREADS;
      else process.env.GLM46V_WASM_THREADS = saved;
    }
  });
});
