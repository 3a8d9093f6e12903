#!/usr/bin/env bash
# Issue 24 in one run on a GPU machine (no Node.js, no registry there: scripts/gpu/pack_gpu.sh packs .gpu/ first):
#   1 adapter   the WebGPU adapter Dawn finds over the NVIDIA Vulkan driver, and the device's limits
#   2 parity    the reference suite's core files (text, model with every gradient, generation, video) on webgpu,
#               `glm46v parity` with the CPU tolerance (atol 1e-4): one parity line per file
#   3 bench     the benchmark model's rows (vision, prefill, decode at 128 and 1024, training step): ours on webgpu,
#               PyTorch (bench_torch.py) on the same GPU in float32 and bf16
#   4 flash     a GLM-4.6V-Flash-shaped model with random weights made here with PyTorch, loaded in float32 on webgpu:
#               load, GPU memory, prefill of one 1024x1024 image + 64 text tokens, decode, logits vs PyTorch float32,
#               and a profile of one decode step; PyTorch bf16 and float32 on the same inputs
# Each stage has its own time limit and the whole run a budget (GPU_RUN_BUDGET_S, default 500 s), so a slow stage
# cannot eat the machine's 15 minutes; a stage that fails or times out is reported and the next one runs.
# Everything lands in $OUT (default out/gpu_run): summary.md (the tables for docs/gpu.md), log.txt, results.json,
# adapter.json, flash_profile.md.
# Usage on the GPU machine (device tool `run`, carry [".gpu", ".gl"]):  bash scripts/gpu/gpu_run.sh
# Here, the same path on lavapipe and PyTorch on the CPU, small sizes:     bash scripts/gpu/gpu_run.sh --small
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SMALL=0
[ "${1:-}" = --small ] && SMALL=1
OUT=${OUT:-$ROOT/out/gpu_run}
WORK=${GPU_RUN_WORK:-/tmp/gpu_run}
BUDGET=${GPU_RUN_BUDGET_S:-500}
mkdir -p "$OUT" "$WORK"
LOG=$OUT/log.txt
: >"$LOG"
START=$SECONDS
say() { echo "$*" | tee -a "$LOG"; }

# --- setup: Node and Dawn from .gpu, the Vulkan loader from .gl (GPU machine); PyTorch's device ---
PY=${GLM46V_PYTHON:-python3}
if [ "$SMALL" = 1 ]; then
  TORCH_DEV=cpu
else
  TORCH_DEV=cuda
  if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  if [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
fi
[ -d .gpu/bundle ] || { say "gpu_run: no .gpu/bundle: run bash scripts/gpu/pack_gpu.sh first"; exit 1; }
NODE=$WORK/node
[ -x "$NODE" ] || xz -dc .gpu/node.xz >"$NODE" && chmod +x "$NODE"
DAWN=.gpu/node_modules/webgpu/dist/linux-x64/dawn.node
[ -f "$DAWN" ] || xz -dc "$DAWN.xz" >"$DAWN"
cp package.json .gpu/package.json # the bundles look for the package's package.json above them
B=$ROOT/.gpu/bundle
for z in "$B"/*.js.xz; do [ -f "${z%.xz}" ] || xz -dkc "$z" >"${z%.xz}"; done
export GLM46V_BACKEND=webgpu
say "gpu_run: $(date -u +%FT%TZ) $(uname -n) small=$SMALL node $("$NODE" --version) torch on $TORCH_DEV; budget ${BUDGET}s"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$LOG"

STATUS=()
# stage NAME LIMIT_S CMD...: runs CMD with a time limit (capped by what is left of the budget), output to the log
stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET - (SECONDS - START)))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 10 ]; then
    STATUS+=("$name: not run (budget spent)")
    say "== $name: not run, budget spent"
    return 1
  fi
  say "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  local verdict=ok
  [ $rc = 124 ] || [ $rc = 137 ] && verdict="TIMED OUT at ${limit}s"
  [ $rc != 0 ] && [ "$verdict" = ok ] && verdict="failed (exit $rc)"
  STATUS+=("$name: $verdict in $((SECONDS - t0)) s")
  say "== $name: $verdict in $((SECONDS - t0)) s"
  return $rc
}

# 1 adapter
stage adapter 60 sh -c "'$NODE' '$B/gpu.js' adapter >'$WORK/adapter.json'" && cp "$WORK/adapter.json" "$OUT/"

# 2 parity: every core reference file, one process each (a crash costs one file)
parity() {
  local f
  for f in spec/fixtures/text/*.safetensors spec/fixtures/model/*.safetensors spec/fixtures/video/model_video.safetensors \
    spec/fixtures/video/model_video_batch.safetensors spec/fixtures/video/model_mixed.safetensors; do
    [ -f "$f" ] || continue
    echo "-- $f"
    "$NODE" "$B/gpu.js" parity --reference "$f" 2>&1 | tee "$WORK/parity_$(basename "$(dirname "$f")")_$(basename "$f" .safetensors).txt" | grep -E '^parity:|FAIL|Error' || echo "parity: no result ($f)"
  done
}
export NODE B WORK
stage parity 150 bash -c "$(declare -f parity); parity"

# 3 bench: ours on webgpu, then PyTorch float32 and bf16 on the same GPU, same model folder and inputs
BENCH=$WORK/bench_model
if [ "$SMALL" = 1 ]; then
  ROWS=matmul; QUICK=(--quick) # lavapipe runs the bench model's rows at minutes each: the plumbing only
  TARGS=(--warmup 1 --runs 2 --decode-steps 6 --train-steps 1)
else
  ROWS=vision,prefill,decode,train; QUICK=(--quick)
  TARGS=(--warmup 1 --runs 2 --decode-steps 6 --train-steps 1)
fi
stage bench_webgpu 150 "$NODE" "$B/gpu.js" bench "${QUICK[@]}" --no-torch --rows "$ROWS" --contexts 128,1024 --our-threads 1 --model "$BENCH" --out "$WORK/bench_webgpu.json"
for dt in float32 bfloat16; do
  stage "bench_torch_$dt" 75 sh -c "'$PY' scripts/bench/bench_torch.py run --model '$BENCH' --device $TORCH_DEV --dtype $dt --rows $ROWS ${TARGS[*]} --contexts 128,1024 --matmul 512,1024,2816 | tail -1 >'$WORK/bench_torch_$dt.json'"
done

# 4 flash: the full-size model (small: its widths with 2 text layers, 2 vision blocks and a 112 px image)
FLASH=$WORK/flash
if [ "$SMALL" = 1 ]; then FARGS=(--text-layers 2 --vision-blocks 2 --image 112 --text-tokens 16); STEPS=4; else FARGS=(); STEPS=16; fi
if [ -f "$FLASH/inputs.safetensors" ] || stage flash_make 120 sh -c "'$PY' scripts/gpu/flash_torch.py make --out '$FLASH' --device $TORCH_DEV ${FARGS[*]} | tail -1 >'$WORK/flash_make.json'"; then
  stage flash_torch_float32 100 sh -c "'$PY' scripts/gpu/flash_torch.py run --model '$FLASH' --device $TORCH_DEV --dtype float32 --decode-steps $STEPS --logits '$WORK/flash_f32_logits.safetensors' | tail -1 >'$WORK/flash_torch_float32.json'"
  stage flash_webgpu 200 sh -c "'$NODE' '$B/gpu.js' flash --model '$FLASH' --decode-steps $STEPS --logits '$WORK/flash_f32_logits.safetensors' --profile '$OUT/flash_profile.md' | tail -1 >'$WORK/flash_webgpu.json'"
  stage flash_torch_bfloat16 60 sh -c "'$PY' scripts/gpu/flash_torch.py run --model '$FLASH' --device $TORCH_DEV --dtype bfloat16 --decode-steps $STEPS | tail -1 >'$WORK/flash_torch_bfloat16.json'"
fi

printf '%s\n' "${STATUS[@]}" >"$WORK/stages.txt"
"$PY" scripts/gpu/gpu_report.py "$WORK" "$OUT" "$((SECONDS - START))" | tee -a "$LOG"
say "gpu_run: done in $((SECONDS - START)) s; files in $OUT"
