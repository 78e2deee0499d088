#!/usr/bin/env bash
# The brian2 neuron-model study (docs/results_spiking.md, "Brian2 neuron models and the modulator's delay"):
# dfa, clapp and the random-features control with each brian2 neuron model beside Norse LIF and the rate network
# (e-prop on Norse and rate), and dfa (clapp: LIF) against the modulator's delay; sweeps (resumable), figures,
# tables and the committed summaries (experiments/brian2/<name>/summary.csv, pstar.csv).
#   bash experiments/brian2/neurons.sh        # 120 + 27 + 3 + 34 runs, ~90 min on the shared 2-core machine
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
mkdir -p results  # the sweeps create only their own directory
c=experiments/brian2
curve() { nice -n 5 spiking-rhm curve "$@" --quiet; }
curve --config $c/neurons.toml                      # brian2: 3 rules x 4 neuron models x 2 P x 3 seeds
curve --config $c/neurons_reference.toml            # rate and Norse LIF: dfa, clapp, eprop, control
curve --config $c/delay.toml                        # dfa, LIF and AdEx, delay 10 and 50 ms (0: the runs above)
curve --config $c/delay.toml --rule clapp --vary spiking.neuron=lif
curve --config $c/delay_norse_online.toml           # the online form: Norse LIF, a signal every step
# the 50 ms delay with the hidden layers' learning rate multiplied by exp(50 ms / tau_elig) = e^2.5
curve --config $c/delay.toml --vary spiking.neuron=lif --vary spiking.modulator_delay=0.05 --lr 12.182494 \
    --option readout_lr=1.0 --out results/brian2_delay_lr
# the dendritic delivery (two-compartment): clapp and the control with the LIF and the two-compartment neuron,
# sibling-cca (the dendrite's branches; Norse LIF beside it), clapp's point update, the silent soma, the current
curve --config $c/dendrite.toml
curve --config $c/dendrite.toml --rule sibling-cca --vary spiking.neuron=two-compartment
curve --config $c/dendrite.toml --rule sibling-cca --backend norse --vary spiking.neuron=lif
curve --config $c/dendrite.toml --rule clapp --vary spiking.neuron=two-compartment \
    --vary spiking.neuron_options.delivery=0
curve --config $c/dendrite.toml --rule clapp --vary spiking.neuron=two-compartment \
    --vary spiking.neuron_options.phase_spikes=0
curve --config $c/dendrite.toml --rule clapp --vary spiking.neuron=two-compartment \
    --vary spiking.neuron_options.inject=0.05,1.0
curve --config $c/dendrite.toml --rule clapp --vary spiking.neuron=two-compartment \
    --vary spiking.neuron_options.g_c=0.2 --vary spiking.neuron_options.delivery=0,1
python $c/neuron_study.py results/brian2_neurons --out docs/figures/brian2/neuron_study.png
python $c/neuron_study.py results/brian2_delay results/brian2_delay_online results/brian2_neurons --axis delay \
    --out docs/figures/brian2/modulator_delay.png
python $c/neuron_study.py results/brian2_dendrite --axis dendrite
for name in neurons delay delay_online delay_lr dendrite; do
    mkdir -p "$c/$name"
    spiking-rhm report "results/brian2_$name" --out "results/brian2_$name/report.md" \
        --csv "$c/$name/summary.csv" --pstar-csv "$c/$name/pstar.csv"
    cat "results/brian2_$name/report.md"
done
