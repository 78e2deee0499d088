#!/usr/bin/env bash
# Deployment of trained networks: train -> checkpoint -> NIR -> Norse vs Lava float vs Loihi fixed point
# (docs/hardware.md).  About 4 minutes on 2 cores; writes experiments/results/deploy/*.json and the NIR files.
#   bash experiments/deploy/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. experiments/deploy/common.sh   # OMP_NUM_THREADS, $out, $work, ${nir_point[@]}

# 1. A spiking network trained by surrogate-gradient BPTT on Norse, (8,4,8,2,2), T = 30 at 1000 Hz.
spiking-rhm train --rule bp --backend norse --v 8 --m 4 --nc 8 --s 2 --L 2 --P 384 --P-test 128 --seed 0 \
    --width 64 --epochs 30 --batch-size 32 --min-steps 400 --option spiking.T=30 --option spiking.max_rate=1000.0 \
    "${nir_point[@]}" --quiet --save-net "$work/bp_norse_s8L2.npz" --out "$out/bp_norse_s8L2_train.json"
spiking-rhm export "$work/bp_norse_s8L2.npz" --out "$work/bp_norse_s8L2.nir"
spiking-rhm deploy "$work/bp_norse_s8L2.nir" --P-test 128 --batch 128 --quiet --out "$out/bp_norse_s8L2.json"

# 1b. Rate -> spiking conversion with and without a refitted readout: rate BP on (8,4,8,2,2).
spiking-rhm train --rule bp --backend rate --v 8 --m 4 --nc 8 --s 2 --L 2 --P 384 --P-test 128 --seed 0 \
    --width 64 --quiet --save-net "$work/bp_rate_s8L2.npz" --out "$out/bp_rate_s8L2_train.json"
spiking-rhm export "$work/bp_rate_s8L2.npz" --out "$work/bp_rate_s8L2.nir" --option spiking.T=30 \
    --option spiking.max_rate=1000.0 "${nir_point[@]}"
spiking-rhm deploy "$work/bp_rate_s8L2.nir" --P-test 128 --engine reference --quiet --out "$out/bp_rate_s8L2.json"
spiking-rhm export "$work/bp_rate_s8L2.npz" --out "$work/bp_rate_s8L2_refit.nir" --option spiking.T=30 \
    --option spiking.max_rate=1000.0 "${nir_point[@]}" --refit-readout
spiking-rhm deploy "$work/bp_rate_s8L2_refit.nir" --P-test 128 --engine reference --quiet \
    --out "$out/bp_rate_s8L2_refit.json"

# 2. A rate network trained by backprop, (8,4,8,2,3), converted: T = 30 at 1000 Hz, readout refitted on its spikes.
spiking-rhm train --rule bp --backend rate --v 8 --m 4 --nc 8 --s 2 --L 3 --P 1536 --P-test 4000 --seed 0 \
    --width 128 --quiet --save-net "$work/bp_rate_s8L3.npz" --out "$out/bp_rate_s8L3_train.json"
spiking-rhm export "$work/bp_rate_s8L3.npz" --out "$work/bp_rate_s8L3.nir" --option spiking.T=30 \
    --option spiking.max_rate=1000.0 "${nir_point[@]}" --refit-readout
spiking-rhm deploy "$work/bp_rate_s8L3.nir" --P-test 1000 --quiet --out "$out/bp_rate_s8L3.json"

# 3. The label-free sibling-cca rate network, (8,4,8,2,3), converted the same way (T = 30 and T = 100).
spiking-rhm train --rule sibling-cca --backend rate --v 8 --m 4 --nc 8 --s 2 --L 3 --P 1536 --P-test 4000 \
    --seed 0 --width 128 --epochs 30 --batch-size 32 --quiet --save-net "$work/scca_rate_s8L3.npz" \
    --out "$out/scca_rate_s8L3_train.json"
for T in 30 100; do
  spiking-rhm export "$work/scca_rate_s8L3.npz" --out "$work/scca_rate_s8L3_T$T.nir" --option spiking.T=$T \
      --option spiking.max_rate=1000.0 "${nir_point[@]}" --refit-readout
  spiking-rhm deploy "$work/scca_rate_s8L3_T$T.nir" --P-test 1000 --quiet --out "$out/scca_rate_s8L3_T$T.json"
done
