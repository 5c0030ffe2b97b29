#!/usr/bin/env bash
# The whole recommender comparison on a CUDA GPU (issue 10): the paper preset for the generative
# models (A.1: 4+4 layers, up to 200 epochs, patience 20) and the ranking models to convergence,
# 3 seeds each, on Beauty and Scientific. Needs the per-seed agentictagger builds of
# bench/taxonomy_alignment.py under bench/runs/align/ (CPU, ~10 min each; carried to the device).
#   bash bench/gpu_compare.sh            # everything
#   GR_MINUTES=20 bash bench/gpu_compare.sh gr   # only the generative comparison, 20 min per model
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GR_MINUTES=${GR_MINUTES:-60}
what=${1:-all}
nvidia-smi -L || { echo "no CUDA GPU visible: this script is for a GPU machine" >&2; exit 1; }
if [[ $what == all || $what == rank ]]; then
  for ds in beauty scientific; do
    $PY bench/rank.py --dataset "$ds" --threads 4 --out "bench/results/rank_${ds}_gpu.json"
  done
fi
if [[ $what == all || $what == gr ]]; then
  for ds in beauty scientific; do
    $PY bench/gr_beauty.py --dataset "$ds" --preset paper --seeds 0,1,2 --threads 4 \
      --budget-minutes "$GR_MINUTES" --out "bench/results/gr_${ds}_gpu.json" \
      --sid-table "bench/runs/align/${ds}_offline_s{seed}/semantic_ids.parquet" \
      --vocab "bench/runs/align/${ds}_offline_s{seed}/vocabulary.json"
  done
fi
