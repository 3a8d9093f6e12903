#!/usr/bin/env bash
# Packs what scripts/gpu/gpu_run.sh needs on a GPU machine that has no Node.js and no package registry, into .gpu/
# (git-ignored through .git/info/exclude; carried by the device tool's `carry: [".gpu"]`, 64 MiB at most):
#   node.xz                 this machine's Node binary (linux-x64), xz-compressed
#   bundle/gpu.js.xz        one minified esbuild bundle (scripts/gpu/gpu_entry.ts: the package and tfjs inlined), xz
#   node_modules/webgpu/    Dawn: index.js, package.json and dist/linux-x64/dawn.node.xz (unpacked there)
# The reference fixtures travel with the working tree (spec/fixtures is tracked); the benchmark model and the
# full-size model are made on the GPU machine. Usage: bash scripts/gpu/pack_gpu.sh   (prints the pack's size)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -m)" = x86_64 ] || { echo "pack_gpu: the GPU machines are x86-64; pack on x86-64" >&2; exit 1; }
grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
rm -rf .gpu && mkdir -p .gpu/bundle .gpu/node_modules/webgpu/dist/linux-x64
start=$SECONDS
xz -T2 -9e -c "$(readlink -f "$(command -v node)")" >.gpu/node.xz
cp node_modules/webgpu/index.js node_modules/webgpu/package.json .gpu/node_modules/webgpu/
xz -T2 -9e -c node_modules/webgpu/dist/linux-x64/dawn.node >.gpu/node_modules/webgpu/dist/linux-x64/dawn.node.xz
# One bundle (scripts/gpu/gpu_entry.ts dispatches: adapter, bench, flash, or a glm46v CLI command), so tfjs travels once.
# 'webgpu' stays outside (lib/webgpu.ts imports it at run time, natively); the native TensorFlow backend and the wasm
# backend's files are not carried: the GPU run uses the webgpu and cpu backends.
npx esbuild scripts/gpu/gpu_entry.ts --bundle --minify --keep-names --platform=node --target=node20 --format=cjs --log-level=error \
  --external:webgpu --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu --outfile=.gpu/bundle/gpu.js
xz -T2 -9 .gpu/bundle/*.js
# what travels: .gpu, .gl (the Vulkan loader debs) and the working tree (tracked and untracked-not-ignored files)
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s }')
carried=$(du -sb .gpu $( [ -d .gl ] && echo .gl) | awk '{ s += $1 } END { print s }')
echo "pack_gpu: .gpu + .gl $carried bytes + working tree $tree bytes = $(((carried + tree) * 100 / 1048576 / 100)) MiB of the 64 MiB a run may carry"
[ $((carried + tree)) -le $((64 * 1048576)) ] || { echo "pack_gpu: over 64 MiB" >&2; exit 1; }
echo "pack_gpu: packed in $((SECONDS - start)) s"
