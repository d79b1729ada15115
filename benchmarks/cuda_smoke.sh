#!/bin/bash
# The command line end to end on a CUDA GPU: GPU speed (gpu_check.py), a phantom dataset, training without DP,
# with patient-level DP (all of D, then D's heads only from the first model), streamed sampling, an evaluation
# with controls, and the diffusion generator. Usage: bash benchmarks/cuda_smoke.sh [OUT_DIR]  (a few minutes).
cd "$(dirname "$0")/.." || exit 1
OUT=${1:-${OUT:-$(mktemp -d)}}
W=$(mktemp -d)
mkdir -p "$OUT/logs"
export SYNTHVU_CACHE=$W/cache
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
step() {
  local n=$1 lim=$2; shift 2
  local t0=$(date +%s)
  timeout "$lim" "$@" > "$OUT/logs/$n.log" 2>&1
  local rc=$?
  echo "== $n rc=$rc $(( $(date +%s) - t0 )) s"
  tail -4 "$OUT/logs/$n.log" | cut -c1-300
}
step gpu_check 300 python3 benchmarks/gpu_check.py --device cuda --train-batches 32 --no-dp --out "$OUT/gpu.json"
step build 90 python3 -m synthvu_core data build --phantom 40 --out "$W/ds"
step train 120 python3 -m synthvu_core train --dataset "$W/ds" --out "$W/m" --steps 200 --device cuda
step train_dp 90 python3 -m synthvu_core train --dataset "$W/ds" --out "$W/mdp" --steps 30 --device cuda --target-epsilon 10
step train_dp_heads 90 python3 -m synthvu_core train --dataset "$W/ds" --out "$W/mdph" --steps 30 --device cuda \
  --target-epsilon 10 --init-from "$W/m" --private-layers heads
step sample 90 python3 -m synthvu_core sample "$W/m" --n 20000 --device cuda --out "$W/x.npz"
step evaluate 240 python3 -m synthvu_core evaluate "$W/m" --dataset "$W/ds" --controls --quiet
step train_diff 120 python3 -m synthvu_core train --dataset "$W/ds" --out "$W/mdf" --arch diffusion --steps 60 --device cuda
step sample_diff 90 python3 -m synthvu_core sample "$W/mdf" --n 256 --device cuda --out "$W/xd.npz"
cp "$W/m/report/report.json" "$OUT/eval-report.json" 2>/dev/null
echo "logs and results in $OUT"
