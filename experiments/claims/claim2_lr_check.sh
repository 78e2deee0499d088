#!/usr/bin/env bash
# Claim 2, learning-rate check: is the failure of the direct-feedback family an artefact of the default
# learning rate (1.0 x H; sdfa 0.1 x H)?  The same setting at smaller base rates (x H: 0.3 and 0.1;
# sdfa 0.01), fewer P values.  Run from the repository root:  bash experiments/claims/claim2_lr_check.sh
#   spiking-rhm pstar experiments/results/claim2_lr_check && spiking-rhm plot experiments/results/claim2_lr_check
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
cfg=experiments/claims/claim2_lr_check.toml
for lr in 0.3 0.1; do
    nice -n 5 spiking-rhm curve --config "$cfg" --workers 1 --lr "$lr"
done
nice -n 5 spiking-rhm curve --config "$cfg" --workers 1 --lr 0.01 --rule sdfa
