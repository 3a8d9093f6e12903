#!/usr/bin/env bash
# Packs what scripts/gpu/gpu_run.sh needs on a GPU machine that has no Node.js and no package registry, into .gpu/
# (git-ignored through .git/info/exclude; carried by the device tool's `carry: [".gpu"]`, 64 MiB at most):
#   node.xz                 this machine's Node binary (linux-x64), xz-compressed
#   bundle/*.js             esbuild bundles of the entry points (the package and tfjs inlined; no node_modules)
#   node_modules/webgpu/    Dawn: index.js, package.json and dist/linux-x64/dawn.node.xz (unpacked there)
# The reference fixtures travel with the working tree (spec/fixtures is tracked); the benchmark model and the
# full-size model are made on the GPU machine. Usage: bash scripts/gpu/pack_gpu.sh   (prints the pack's size)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -m)" = x86_64 ] || { echo "pack_gpu: the GPU machines are x86-64; pack on x86-64" >&2; exit 1; }
grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
rm -rf .gpu && mkdir -p .gpu/bundle .gpu/node_modules/webgpu/dist/linux-x64
start=$SECONDS
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" >.gpu/node.xz
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .gpu/node_modules/webgpu/
xz -T2 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node >.gpu/node_modules/webgpu/dist/linux-x64/dawn.node.xz
# One bundle per entry point. 'webgpu' stays outside (lib/webgpu.ts imports it at run time, natively); the native
# TensorFlow backend and the wasm backend's files are not carried: the GPU run uses the webgpu and cpu backends.
for entry in cli/main.ts scripts/bench/bench.ts scripts/gpu/check.ts scripts/gpu/flash_run.ts scripts/gpu/adapter.ts; do
  npx esbuild "$entry" --bundle --platform=node --target=node20 --format=cjs --log-level=error \
    --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
    --outfile=".gpu/bundle/$(basename "$entry" .ts).js"
done
echo "pack_gpu: .gpu is $(du -sm .gpu | cut -f1) MiB ($(du -sb .gpu | cut -f1) bytes) in $((SECONDS - start)) s; the working tree adds $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes"
