// Exit 0 when a WebGPU adapter can be had here (Dawn + a Vulkan driver), 3 with the one-line reason otherwise.
import { setupWebGpu, shutdownWebGpu, webGpuFailure } from '../../lib/webgpu';

setupWebGpu({ quiet: true }).then((ok) => {
  if (!ok) process.stderr.write(`${webGpuFailure() ?? 'no WebGPU adapter'}\n`);
  shutdownWebGpu();
  process.exit(ok ? 0 : 3);
});
