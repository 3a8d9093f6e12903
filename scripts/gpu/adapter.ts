// The WebGPU adapter Dawn picks here and the limits of the device glm46v opens on it: one JSON line.
// Usage: node adapter.js   (scripts/gpu/gpu_run.sh's first stage)
import { setupWebGpu, shutdownWebGpu, webGpuAdapter, webGpuFailure, webGpuLimits } from '../../lib/webgpu';

setupWebGpu({ quiet: true }).then((ok) => {
  if (!ok) {
    process.stderr.write(`${webGpuFailure()}\n`);
    process.exit(3);
  }
  process.stdout.write(JSON.stringify({ adapter: webGpuAdapter(), limits: webGpuLimits() }) + '\n');
  shutdownWebGpu();
});
