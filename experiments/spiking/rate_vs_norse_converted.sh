#!/usr/bin/env bash
# Converted networks of the rate_vs_norse sweep's (8,4,8,2,3) setting: the rate back end's bp and sibling-cca
# networks (the sweep's own configs: width 64, 30 epochs of batch 32, P_test 1024; P = 1024, 1536, seeds 0-2,
# checkpoints in runs/convert/) simulated on Norse at T = 30 and 100 (experiments/spiking/convert.py): at the
# back end's defaults as trained and weight-normalised (p99.9), and with near-IF neurons (tau_mem = 1 s)
# normalised; the readout as trained or refitted on the spiking features.  Resumable (rows already in the
# output file are skipped).  Rows: results/rate_vs_norse/converted.jsonl; table: the seed means.
#   bash experiments/spiking/rate_vs_norse_converted.sh     # 12 networks, ~25 min on the shared 2-core machine
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
OUT=results/rate_vs_norse/converted.jsonl
mkdir -p results/rate_vs_norse
for rule in sibling-cca bp; do
  for P in 1024 1536; do
    for seed in 0 1 2; do
      common="--rule $rule --L 3 --P $P --P-test 1024 --width 64 --seed $seed --T 30,100 --percentile 99.9 --out $OUT"
      nice -n 5 python experiments/spiking/convert.py $common > /dev/null
      nice -n 5 python experiments/spiking/convert.py $common --spiking tau_mem=1.0 --normalised-only > /dev/null
    done
  done
done
python experiments/spiking/convert.py --summary $OUT
