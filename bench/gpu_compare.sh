#!/usr/bin/env bash
# The whole recommender comparison on a CUDA GPU: the generative models at the paper preset (A.1:
# 4+4 layers) for an equal number of epochs each (GR_EPOCHS, resumable: rerun the same command
# after an interruption), and the ranking models at the strength recipe, 3 seeds each, on Beauty,
# Scientific and Office. Needs the per-seed agentictagger builds of bench/taxonomy_alignment.py
# under bench/runs/align/ (CPU, ~10 min each; carried to the device).
#   bash bench/gpu_compare.sh                  # everything
#   GR_EPOCHS=10 bash bench/gpu_compare.sh gr  # only the generative comparison, 10 epochs per model
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GR_EPOCHS=${GR_EPOCHS:-30}
what=${1:-all}
nvidia-smi -L || { echo "no CUDA GPU visible: this script is for a GPU machine" >&2; exit 1; }
if [[ $what == all || $what == rank ]]; then
  for ds in beauty scientific office; do
    $PY bench/rank.py --dataset "$ds" --recipe strength --seeds 0,1,2 --threads 4 \
      --out "bench/results/rank_${ds}_strength_gpu.json"
  done
fi
if [[ $what == all || $what == gr ]]; then
  for ds in beauty scientific office; do
    $PY bench/gr_beauty.py --dataset "$ds" --preset paper --seeds 0,1,2 --threads 4 \
      --max-epochs "$GR_EPOCHS" --out "bench/results/gr_${ds}_epochs_gpu.json" \
      --sid-table "bench/runs/align/${ds}_offline_s{seed}/semantic_ids.parquet" \
      --vocab "bench/runs/align/${ds}_offline_s{seed}/vocabulary.json"
  done
fi
