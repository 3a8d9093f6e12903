#!/usr/bin/env bash
# The GPU code path of `npm test`: the reference suite (text, full model with gradients, generation, video) and the
# webgpu op checks on the webgpu backend (Dawn over Vulkan; lavapipe on CPU-only machines, see setup_vulkan.sh).
# Where no adapter can be had it says why and passes, unless GLM46V_REQUIRE_WEBGPU=1 (CI sets it).
set -uo pipefail
cd "$(dirname "$0")/../.."
if ! reason=$(npx tsx scripts/gpu/probe_webgpu.ts 2>&1 >/dev/null); then
  echo "webgpu suite not run: ${reason##*$'\n'}" >&2
  [ "${GLM46V_REQUIRE_WEBGPU:-0}" = 1 ] && exit 1
  exit 0
fi
GLM46V_BACKEND=webgpu npx mocha spec/parity_suite.spec.ts spec/lib/webgpu.spec.ts
