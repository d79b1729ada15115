#!/usr/bin/env bash
# The 3-D generator on a GPU: sampling speed and peak memory of one 32x128x128 sub-volume (whole and slab
# decoding), and training seconds per step at full size (32x128x128, batch 4). About 2-5 minutes on one
# data-centre GPU; results in ${OUT:-.}/volumes-gpu.json. Run from the repository root:
#   bash benchmarks/volumes_gpu.sh
set -euo pipefail
out="${OUT:-.}/volumes-gpu.json"
python -c "import torch, monai; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0), torch.__version__, monai.__version__)"
timeout 600 python -m benchmarks.volumes --device cuda --shape 32,128,128 --steps 8 --guidance 1.5 --slab 4 \
  --train-shape 32,128,128 --train-batch 4 --train-steps 10 --threads 4 --out "$out"
echo "written: $out"
