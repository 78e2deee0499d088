#!/usr/bin/env bash
# Rate vs Norse learning curves (experiments/spiking/rate_vs_norse.toml): the sweep (resumable), its figure
# docs/figures/spiking/rate_vs_norse.png and the P* table (spiking-rhm report).
#   bash experiments/spiking/rate_vs_norse.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
nice -n 5 spiking-rhm curve --config experiments/spiking/rate_vs_norse.toml --quiet
spiking-rhm plot results/rate_vs_norse
cp results/rate_vs_norse/figures/learning_curves.png docs/figures/spiking/rate_vs_norse.png
spiking-rhm report results/rate_vs_norse --out results/rate_vs_norse/report.md
cat results/rate_vs_norse/report.md
