"""Lava (float, bit-accurate fixed point) and the numpy integer model vs Norse: inference of a batch, one learning step.

Network (v, m, n_c, s, L) = (8, 4, 8, 2, 3) CNN with random weights (defaults: width 64, T 30, rate
code 1000 Hz, batch 64), float64.  Times (best of ``--repeats``), each as a user calls it:

* ``norse``: :func:`spiking_rhm.backends.norse.deployed.simulate`;
* ``lava-float`` / ``lava-fixed``: :func:`hardware.loihi.network.run` (process construction, compilation,
  the run and reading the spikes; a batch is that many copies side by side);
* ``reference-fixed``: the same integers in numpy (``engine="reference"``);
* ``learn``: one plastic presentation of ``dfa`` on 2 samples, Norse ``ThreeFactorLearner.step`` vs
  :func:`hardware.loihi.learning.three_factor_step` (Lava's learning engine).

Prints the agreement as well (Lava float spikes == Norse; fixed == reference).  Last line:
``ratio=<Lava float seconds / Norse seconds>`` for inference.  Needs lava-nc (``scripts/install_lava.sh``).
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from timing import best_of


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--T", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from hardware.deploy import flat_trains
    from hardware.loihi.learning import three_factor_step
    from hardware.loihi.network import from_nir, run
    from hardware.nir_graph import to_nir
    from spiking_rhm.backends.norse.deployed import TrainedNetwork, encode, simulate
    from spiking_rhm.backends.norse.learners import PresentedBatch, ThreeFactorLearner
    from spiking_rhm.backends.norse.network import Weights, float64_parameters, init_weights
    from spiking_rhm.backends.norse.build import build_network
    from spiking_rhm.config import NetConfig, RHMConfig, RunConfig, SpikingConfig

    cfg = RunConfig(rhm=RHMConfig(8, 4, 8, 2, 3), P=1024, rule="dfa", backend="norse",
                    net=NetConfig("cnn", args.width),
                    spiking=SpikingConfig(T=args.T, max_rate=1000.0, code="rate", v_rest=1.0, drive=4.0, reset="zero",
                                          v_init="rest"))  # the operating point a NIR CubaLIF expresses
    encoder, spec, params = build_network(cfg, 8)
    params = float64_parameters(params)
    w = init_weights(spec, torch.Generator().manual_seed(0), torch.float64)
    zero = torch.zeros(spec.n_out, dtype=torch.float64)
    net = TrainedNetwork(spec, params, w.hidden, w.readout / spec.widths[-1], zero, encoder, cfg)
    rhm = cfg.rhm.build()
    inputs = rhm.decode(np.random.default_rng(0).integers(0, rhm.P_max, size=args.batch)).inputs
    spikes = encode(net, inputs, 1)
    lnet = from_nir(to_nir(net))

    t_norse, (_, _, trains) = best_of(lambda: simulate(net, spikes, record=True), args.repeats)
    t_float, res_float = best_of(lambda: run(lnet, spikes, "float"), args.repeats)
    t_fixed, res_fixed = best_of(lambda: run(lnet, spikes, "fixed"), args.repeats)
    t_ref, res_ref = best_of(lambda: run(lnet, spikes, "fixed", engine="reference"), args.repeats)
    same_float = all(np.array_equal(a, b) for a, b in zip(res_float.trains, flat_trains(trains)))
    same_fixed = all(np.array_equal(a, b) for a, b in zip(res_fixed.trains, res_ref.trains))

    learner = ThreeFactorLearner("dfa", {}, spec, params, torch.Generator().manual_seed(3), dtype=torch.float64)
    state0 = copy.deepcopy(learner.rule_state)
    target = torch.nn.functional.one_hot(torch.as_tensor([0, 1]), spec.n_out).double()
    two = spikes[:, :2]
    t_learn_norse, ref = best_of(lambda: learner.step(Weights(list(w.hidden), w.readout), PresentedBatch(two, target),
                                                      0.1), args.repeats)
    t_learn_lava, lava = best_of(lambda: three_factor_step(net, learner.rule, copy.deepcopy(state0), two, target, 0.1,
                                                           scale="expected"), args.repeats)
    rel = max(float(np.abs(g - r.numpy()).max() / np.abs(r.numpy()).max()) for g, r in zip(lava.grads, ref.grads))

    print(f"network: cnn (8,4,8,2,3), width {args.width}, T {args.T}, batch {args.batch}, float64")
    print(f"{'target':<16} {'seconds':>8} {'x norse':>8}")
    for name, t in (("norse", t_norse), ("lava-float", t_float), ("lava-fixed", t_fixed),
                    ("reference-fixed", t_ref)):
        print(f"{name:<16} {t:>8.3f} {t / t_norse:>8.1f}")
    print(f"lava-float spikes == norse: {same_float};  lava-fixed == reference: {same_fixed}")
    print(f"learning step (dfa, 2 samples): norse {t_learn_norse:.3f} s, lava {t_learn_lava:.3f} s "
          f"(x{t_learn_lava / t_learn_norse:.0f}); max relative difference of the updates {rel:.1e}")
    print(f"ratio={t_float / t_norse:.3g}")


if __name__ == "__main__":
    main()
