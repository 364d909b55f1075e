#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (its image has torch, scikit-learn,
# safetensors; no network). Writes the logs to $OUT (or ./gpu_out).
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, sklearn; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'sklearn', sklearn.__version__)"
  python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_training.py tests/test_loss_and_encoder.py \
      "tests/test_estimator.py::test_default_hraml_beats_euclidean_1nn_on_digits" 2>&1 | tail -15
  python3 bench/bench_core.py --device cuda
  python3 bench/bench_core.py --device cpu
  torchrun --nproc-per-node 1 -m hraml_core.distributed --dataset digits --epochs 50 --out "$OUT/digits.safetensors"
} 2>&1 | tee "$OUT/gpu_check.log"
