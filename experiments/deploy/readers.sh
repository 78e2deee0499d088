#!/usr/bin/env bash
# The reader matrix of docs/hardware.md: a rate-BP network (8,4,8,2,2), converted (T = 30 at 1000 Hz,
# readout refitted), exported in every profile and read by every reader.  About 1 minute on 2 cores.
#   bash experiments/deploy/readers.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. experiments/deploy/common.sh   # OMP_NUM_THREADS, $out, $work, ${nir_point[@]}
spiking-rhm train --rule bp --backend rate --v 8 --m 4 --nc 8 --s 2 --L 2 --P 384 --P-test 128 --seed 0 \
    --width 64 --quiet --save-net "$work/readers_bp_rate_s8L2.npz"
spiking-rhm export "$work/readers_bp_rate_s8L2.npz" --out "$work/readers_bp_rate_s8L2.nir" --option spiking.T=30 \
    --option spiking.max_rate=1000.0 --option spiking.code=rate --option spiking.v_rest=1.0 --option spiking.drive=4.0 \
    --option spiking.reset=zero --option spiking.v_init=rest --refit-readout
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python experiments/deploy/readers.py "$work/readers_bp_rate_s8L2.nir" \
    --P-test 128 --out "$out/readers.json"
spiking-rhm deploy "$work/readers_bp_rate_s8L2.nir" --P-test 128 --engine reference --quiet \
    --target norse,norse-nir,snntorch-nir,loihi-fixed --out "$out/readers_deploy.json"
