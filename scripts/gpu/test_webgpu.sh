#!/usr/bin/env bash
# The GPU code path of `npm test`: the specs of gpu_specs.txt (the reference suite: text, full model with gradients,
# generation, video; saving; training: AdamW vs torch, LoRA, resume) and the webgpu op checks, on the webgpu backend
# (Dawn over Vulkan; lavapipe on CPU-only machines, see setup_vulkan.sh).
# Where no adapter can be had it says why and passes, unless GLM46V_REQUIRE_WEBGPU=1 (CI sets it).
set -uo pipefail
cd "$(dirname "$0")/../.."
if ! reason=$(npx tsx scripts/gpu/probe_webgpu.ts 2>&1 >/dev/null); then
  echo "webgpu suite not run: ${reason##*$'\n'}" >&2
  [ "${GLM46V_REQUIRE_WEBGPU:-0}" = 1 ] && exit 1
  exit 0
fi
mapfile -t specs < <(grep -v '^#' scripts/gpu/gpu_specs.txt | grep .)
GLM46V_BACKEND=webgpu npx mocha "${specs[@]}" spec/lib/webgpu.spec.ts
