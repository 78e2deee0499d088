"""Brian2 back end vs Norse: one presentation window on CPU, the Brian2 network built once.

Network (v, m, n_c, s, L) = (8, 4, 8, 2, 2) CNN, rate code 200 Hz (defaults: width 16, T 50,
batch 4).  Times per window (best of ``--repeats``), both recording spikes and potentials and
computing the per-synapse eligibility:

* Norse: ``run_window`` with ``SynapseEligibility``, float32 and float64;
* Brian2: :class:`spiking_rhm.backends.brian2.network.Brian2Network` built once (construction and code
  generation timed apart), then ``run`` per window (restore, weights in place, input rewritten, the
  window), as the training back end calls it; ``--target auto`` (Cython where it compiles, the training
  default), ``numpy`` or ``cython``.  Every neuron model of the registry at its default options.

Also prints the agreement of the float64 LIF runs (identical spikes, max |dv|, max relative de).
Last line: ``ratio=<Brian2 LIF seconds per window / Norse float32 seconds per window>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from timing import best_of


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--T", type=int, default=50)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--arch", default="cnn", choices=["cnn", "lcn"])
    ap.add_argument("--target", default="auto", choices=["auto", "numpy", "cython"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from spiking_rhm.backends.brian2.equations import NEURON_MODELS, neuron_model
    from spiking_rhm.backends.brian2.network import Brian2Network
    from spiking_rhm.backends.brian2.train import codegen_target
    from spiking_rhm.backends.norse.inputs import SpikeEncoder
    from spiking_rhm.backends.norse.network import (
        build_parameters,
        build_spec,
        float64_parameters,
        init_weights,
        initial_state,
        run_window,
    )
    from spiking_rhm.backends.norse.traces import SynapseEligibility
    from spiking_rhm.rhm import RHM, onehot

    target = codegen_target(args.target)
    v, m, n_c, s, L, dt = 8, 4, 8, 2, 2, 1e-3
    sample = RHM(v, m, n_c, s, L, seed=0).split(args.batch, 0, seed=0)[0]
    enc = SpikeEncoder("rate", args.T, dt, 200.0, v)
    spikes = enc(onehot(sample.inputs, v), torch.Generator().manual_seed(1))
    spec = build_spec(args.arch, enc.channels, s**L, s, L, args.width, n_c)
    params = build_parameters(spec, enc.nominal_rate, dt=dt, tau_elig=args.T * dt)

    def norse(dtype, p):
        w = init_weights(spec, torch.Generator().manual_seed(0), dtype=dtype)
        x = spikes.to(dtype)

        def run():
            traces = [SynapseEligibility(p.elig, dt, p.pre) for _ in range(L)]
            zs, vs = {}, {}

            def rec(t, l, val):
                zs.setdefault(l, []).append(val["z"])
                vs.setdefault(l, []).append(val["v_pre"])

            run_window(x, w.hidden, spec, p, initial_state(spec, p, args.batch, dtype), traces, True, rec)
            return ([torch.stack(zs[l]).numpy() for l in range(L)], [torch.stack(vs[l]).numpy() for l in range(L)],
                    [tr.value().numpy() for tr in traces])
        return w, run

    p64 = float64_parameters(params)
    _, run32 = norse(torch.float32, params)
    w64, run64 = norse(torch.float64, p64)
    t32, _ = best_of(run32, args.repeats)
    t64, (z64, v64, e64) = best_of(run64, args.repeats)

    n_syn = sum(args.batch * P * H * K for P, H, K in zip(spec.positions[1:], spec.widths, spec.fan_in))
    print(f"network {args.arch} width {args.width} T {args.T} batch {args.batch}: {n_syn} synapses; "
          f"brian2 code generation: {target}")
    print(f"norse float32 {t32 * 1e3:.1f} ms/window  norse float64 {t64 * 1e3:.1f} ms/window")
    ratio = None
    for name in NEURON_MODELS:
        model = neuron_model(name, reset=p64.reset)
        t0 = time.perf_counter()
        net = Brian2Network(spec, p64, args.batch, args.T, model, record=True, target=target)
        net.run(w64.hidden, spikes)  # first window: code generation (and the Cython compile, cached on disk)
        build = time.perf_counter() - t0
        tb, res = best_of(lambda: net.run(w64.hidden, spikes), args.repeats)
        rate = np.mean([z.mean() for z in res.spikes]) / dt
        print(f"brian2 {name:<16} {tb * 1e3:7.1f} ms/window  ratio to norse float32 {tb / t32:5.2f}  "
              f"(built once in {build:.1f} s; mean rate {rate:.0f} Hz)")
        if name == "lif":
            ratio = tb / t32
            same = all(np.array_equal(a, b) for a, b in zip(z64, res.spikes))
            dv = max(float(np.abs(a - b).max()) for a, b in zip(v64, res.v))
            de = max(float(np.abs(a - b.e).max() / np.abs(a).max()) for a, b in zip(e64, res.eligibility))
            print(f"  lif float64 agreement with norse: identical spikes {same}, max |dv| {dv:.1e}, "
                  f"max rel de {de:.1e}")
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
