import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { CheckpointReader } from '../../lib/checkpoint';

const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'glm46v.js');

describe('glm46v inspect', () => {
  it('without --model inspects the built-in model: every weight, and the totals its safetensors header gives', () => {
    const r = spawnSync(process.execPath, [BIN, 'inspect'], { encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    const reader = new CheckpointReader(path.join(ROOT, 'assets', 'model'));
    const keys = reader.keys();
    const total = keys.reduce((n, k) => n + reader.info(k).shape.reduce((a, b) => a * b, 1), 0);
    reader.close();
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.equal(`config: ${path.join(ROOT, 'assets', 'model', 'config.json')}`);
    expect(lines.pop()).to.equal(`inspect: ${keys.length} tensors, ${total} parameters`);
    for (const k of keys) expect(r.stdout).to.include(`  ${k}  `);
  });
});
