# Shared preamble of the deployment scripts (sourced from the repository root): one thread per process,
# the committed reports' directory, the working directory for networks, and the operating point these
# deployments were measured at and a NIR CubaLIF expresses (rest at threshold, reset to 0, drive 4,
# Bernoulli rate code); the Norse defaults (reset by subtraction) cannot be exported.
export OMP_NUM_THREADS=1
out=experiments/results/deploy
work=runs/deploy
mkdir -p "$out" "$work"
nir_point=(--option spiking.code=rate --option spiking.v_rest=1.0 --option spiking.drive=4.0
           --option spiking.reset=zero --option spiking.v_init=rest)
