// One bundle for the GPU machine (pack_gpu.sh), so that tfjs is carried once: `node gpu.js COMMAND ARGS...` runs
// adapter (scripts/gpu/adapter.ts), bench (scripts/bench/bench.ts; its children come back with --child), flash
// (scripts/gpu/flash_run.ts), or any glm46v CLI command (parity, generate, ...). Each is required only when chosen.
const cmd = process.argv.includes('--child') ? 'bench' : process.argv[2];
if (!process.argv.includes('--child')) process.argv.splice(2, 1);
if (cmd === 'adapter') require('./adapter');
else if (cmd === 'bench') require('../bench/bench');
else if (cmd === 'flash') require('./flash_run');
else {
  process.argv.splice(2, 0, cmd ?? '--help');
  require('../../cli/main');
}
