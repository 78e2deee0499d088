#!/usr/bin/env bash
# Converted networks beside the rate networks they come from, as learning curves and P* rows
# (docs/results_spiking.md, "Converted networks"): the norse-converted back end trains each rule on the rate back end
# exactly as the rate_vs_norse sweep does (its configs: width 64, 30 epochs of batch 32, >= 400 steps) and scores
# the network on Norse at the back end's defaults (regular 200 Hz code, T = 30, rest v_th / 2, reset by subtraction,
# g = 6), weight-normalised (p99.9, one spike per step) and read out by the rate network's own readout.
# bp and sibling-cca, rate and converted, 3 seeds, on (8,4,8,2,2) (P = 128, 256, 384) and (8,4,8,2,3) (P = 512,
# 1024, 1536; sibling-cca also 2048, 3072); both converted also at T = 100 with near-IF neurons (tau_mem = 1 s),
# sibling-cca also at T = 100 with the default 10 ms leak.  One output directory (resumable), one report (also as
# CSV in experiments/spiking/rate_vs_norse_converted/) and one figure (docs/figures/spiking/rate_vs_norse_converted.png).
#   bash experiments/spiking/rate_vs_norse_converted.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
OUT=results/rate_vs_norse_converted
L2=experiments/spiking/rate_vs_norse.toml
L3=experiments/spiking/rate_vs_norse_L3.toml
NEAR_IF="--option spiking.T=100 --option spiking.tau_mem=1.0"
run() { nice -n 5 spiking-rhm curve --quiet --out $OUT "$@"; }
run --config $L3 --rule bp,sibling-cca --backend rate,norse-converted
run --config $L2 --rule bp,sibling-cca --backend rate,norse-converted
run --config $L3 --rule sibling-cca --backend rate,norse-converted --P 2048,3072
run --config $L2 --rule sibling-cca --backend norse-converted $NEAR_IF
run --config $L3 --rule sibling-cca --backend norse-converted --P 512,1024,1536,2048,3072 $NEAR_IF
run --config $L2 --rule bp --backend norse-converted $NEAR_IF
run --config $L3 --rule bp --backend norse-converted $NEAR_IF
run --config $L2 --rule sibling-cca --backend norse-converted --option spiking.T=100
run --config $L3 --rule sibling-cca --backend norse-converted --P 512,1024,1536,2048,3072 --option spiking.T=100
mkdir -p experiments/spiking/rate_vs_norse_converted
spiking-rhm report $OUT --out $OUT/report.md --csv experiments/spiking/rate_vs_norse_converted/summary.csv \
    --pstar-csv experiments/spiking/rate_vs_norse_converted/pstar.csv
cat $OUT/report.md
spiking-rhm plot $OUT
cp $OUT/figures/learning_curves.png docs/figures/spiking/rate_vs_norse_converted.png
