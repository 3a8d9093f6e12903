#!/usr/bin/env bash
# The CUDA backend (tfjs-node-gpu) on a machine with an NVIDIA GPU and its driver, in one run of under 8 minutes:
#   1. builds it: glm46v setup --gpu (tensorflow[and-cuda] 2.21.0 from pip: CUDA 12.9, cuDNN 9; the driver is the host's);
#   2. shows that ops run on the GPU: the backend line says GPU, nvidia-smi lists this process's GPU memory, a matMul
#      equals the cpu backend's and runs at GPU speed (scripts/gpu/check.ts);
#   3. runs the reference suite of scripts/gpu/gpu_specs.txt on it (same tolerances as everywhere);
#   4. runs the benchmark's quick rows on it (scripts/bench/bench.ts --quick; PyTorch beside it where installed);
# and ends with one table. Usage, from a checkout after `npm install`: bash scripts/gpu/check_cuda.sh
# It exits non-zero when any step fails, and when the build finds no CUDA GPU (the CPU fallback is not a pass here).
set -uo pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
if gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1); then
  echo "GPU: $gpu"
else
  echo "no NVIDIA driver here (nvidia-smi: ${gpu##*$'\n'}); the build below will fall back to the CPU" >&2
fi
npx glm46v setup --gpu || exit 1
echo "setup took $(( $(date +%s) - t0 )) s"
export GLM46V_BACKEND=tensorflow
line=$(node bin/glm46v.js generate --image assets/examples/count.png --prompt "How many shapes are there?" 2>&1 >/dev/null | grep '^glm46v: backend')
echo "$line"
case "$line" in
  *", GPU)"*) status=0 ;;
  *) echo "check_cuda: the ops do not run on a CUDA GPU: $line" >&2; status=1 ;;
esac
npx tsx scripts/gpu/check.ts --suite --bench || status=1
echo "check_cuda: $(( $(date +%s) - t0 )) s in all, exit $status"
exit $status
