#!/usr/bin/env bash
# The brian2 neuron-model study (docs/results_spiking.md, "Brian2 neuron models"): dfa, clapp and the
# random-features control with each brian2 neuron model beside Norse LIF and the rate network (e-prop on those
# two), and dfa against the modulator's delay; sweeps (resumable), figures and tables.
#   bash experiments/brian2/neurons.sh        # 120 + 18 runs; see the docs for the wall time
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
mkdir -p results  # the sweeps create only their own directory
for config in neurons neurons_reference delay; do
    nice -n 5 spiking-rhm curve --config "experiments/brian2/$config.toml" --quiet
done
python experiments/brian2/neuron_study.py results/brian2_neurons --out docs/figures/brian2/neuron_study.png
python experiments/brian2/neuron_study.py results/brian2_delay results/brian2_neurons --axis delay \
    --out docs/figures/brian2/modulator_delay.png
for name in neurons delay; do  # the summaries the docs show are committed in experiments/brian2/<name>/
    mkdir -p "experiments/brian2/$name"
    spiking-rhm report "results/brian2_$name" --out "results/brian2_$name/report.md" \
        --csv "experiments/brian2/$name/summary.csv" --pstar-csv "experiments/brian2/$name/pstar.csv"
    cat "results/brian2_$name/report.md"
done
