#!/usr/bin/env bash
# Rate vs Norse learning curves on two RHM settings, one output directory (results/rate_vs_norse):
# (8,4,8,2,2) from experiments/spiking/rate_vs_norse.toml and (8,4,8,2,3) from rate_vs_norse_L3.toml.
# The sweeps (resumable), one figure with a panel per (setting, back end)
# (docs/figures/spiking/rate_vs_norse.png), the P* table and per-P summary (spiking-rhm report; also as CSV
# in experiments/spiking/rate_vs_norse/).  Then, beside the P* table: bp and sibling-cca converted to spikes, as rows of
# their own sweep with the rate rows they come from (experiments/spiking/rate_vs_norse_converted.sh, back end
# norse-converted, results/rate_vs_norse_converted) and sibling-cca on Norse with the drive raised to g = 18
# (experiments/spiking/scca_drive_L3.toml, its own report) and with g = 18 and T = 100
# (experiments/spiking/scca_T100_L3.toml: its report and CSVs in experiments/spiking/scca_T100_L3/).
#   bash experiments/spiking/rate_vs_norse.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
nice -n 5 spiking-rhm curve --config experiments/spiking/rate_vs_norse.toml --quiet
L3=experiments/spiking/rate_vs_norse_L3.toml                         # (8,4,8,2,3): bp, both back ends
nice -n 5 spiking-rhm curve --config $L3 --quiet
nice -n 5 spiking-rhm curve --config $L3 --quiet --rule eprop,dfa,clapp,sibling-cca,random-features --backend rate
nice -n 5 spiking-rhm curve --config $L3 --quiet --rule sibling-cca --backend rate --P 2048,3072
nice -n 5 spiking-rhm curve --config $L3 --quiet --rule sibling-cca --backend norse --P 1024,1536
nice -n 5 spiking-rhm curve --config $L3 --quiet --rule eprop,dfa,clapp,random-features --backend norse --P 1024
nice -n 5 spiking-rhm curve --config $L3 --quiet --rule sibling-cca --backend norse --P 2048   # vs its rate P* 2254
# -- sibling-cca-online (batch 1, lr 1, lateral_lr 0.5; docs/results_spiking.md "Online sibling-cca"): both back
# ends on (8,4,8,2,2), 3 seeds (scca_online.toml); on (8,4,8,2,3) (scca_online_L3.toml) the same setting (it diverges
# there: rate 3 seeds, Norse seed 0 at P = 1024), lr 0.2 (rate 3 seeds, Norse seed 0 at P = 1024) and lr 0.1 (rate,
# seed 0, P = 3072).  Same output directory; ~40 min on one core of the shared machine.
SO3=experiments/spiking/scca_online_L3.toml
nice -n 5 spiking-rhm curve --config experiments/spiking/scca_online.toml --quiet
nice -n 5 spiking-rhm curve --config $SO3 --quiet
nice -n 5 spiking-rhm curve --config $SO3 --quiet --backend norse --seeds 0 --P 1024
nice -n 5 spiking-rhm curve --config $SO3 --quiet --lr 0.2
nice -n 5 spiking-rhm curve --config $SO3 --quiet --lr 0.2 --backend norse --seeds 0 --P 1024
nice -n 5 spiking-rhm curve --config $SO3 --quiet --lr 0.1 --seeds 0 --P 3072
# -- end of sibling-cca-online
spiking-rhm plot results/rate_vs_norse
cp results/rate_vs_norse/figures/learning_curves.png docs/figures/spiking/rate_vs_norse.png
mkdir -p experiments/spiking/rate_vs_norse
spiking-rhm report results/rate_vs_norse --out results/rate_vs_norse/report.md \
    --csv experiments/spiking/rate_vs_norse/summary.csv --pstar-csv experiments/spiking/rate_vs_norse/pstar.csv
cat results/rate_vs_norse/report.md
bash experiments/spiking/rate_vs_norse_converted.sh
nice -n 5 spiking-rhm curve --config experiments/spiking/scca_drive_L3.toml --quiet
nice -n 5 spiking-rhm curve --config experiments/spiking/scca_drive_L3.toml --quiet --rule random-features --seeds 0 \
    --P 1024
spiking-rhm report results/scca_drive_L3
nice -n 5 spiking-rhm curve --config experiments/spiking/scca_T100_L3.toml --quiet
mkdir -p experiments/spiking/scca_T100_L3
spiking-rhm report results/scca_T100_L3 --csv experiments/spiking/scca_T100_L3/summary.csv \
    --pstar-csv experiments/spiking/scca_T100_L3/pstar.csv
