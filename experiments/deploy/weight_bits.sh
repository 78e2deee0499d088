#!/usr/bin/env bash
# Fixed-point-aware training (docs/hardware.md): DFA and BPTT on Norse, (8,4,8,2,2), width 64, P = 384, each
# trained with float weights and with spiking.weight_bits = 8, deployed to Norse, Lava float and Loihi fixed point
# (the numpy integer model), then the fixed-point residual taken apart by rounding.  About 5 minutes on 2 shared
# cores.
#   bash experiments/deploy/weight_bits.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. experiments/deploy/common.sh   # OMP_NUM_THREADS, $out, $work, ${nir_point[@]}
run() {  # name rule [train options]
  local name=$1 rule=$2
  shift 2
  spiking-rhm train --rule "$rule" --backend norse --v 8 --m 4 --nc 8 --s 2 --L 2 --P 384 --P-test 128 --seed 0 \
      --width 64 --epochs 30 --batch-size 32 --min-steps 400 --option spiking.T=30 \
      --option spiking.max_rate=1000.0 "${nir_point[@]}" "$@" --quiet --save-net "$work/$name.npz" \
      --out "$out/${name}_train.json"
  spiking-rhm export "$work/$name.npz" --out "$work/$name.nir" >/dev/null
  spiking-rhm deploy "$work/$name.nir" --P-test 128 --batch 128 --engine reference --quiet --out "$out/$name.json"
}
run dfa_norse_s8L2 dfa
run dfa_norse_s8L2_w8 dfa --option spiking.weight_bits=8
run bp_norse_s8L2_float bp
run bp_norse_s8L2_w8 bp --option spiking.weight_bits=8
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" python experiments/deploy/fixed_point_residual.py \
    "$work"/{dfa_norse_s8L2,dfa_norse_s8L2_w8,bp_norse_s8L2_float,bp_norse_s8L2_w8}.nir --P-test 128 \
    --out "$out/weight_bits_residual.json"
