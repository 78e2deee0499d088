"""Which fixed-point rounding moves which spikes (docs/hardware.md, fixed-point-aware training).

For a native NIR file, the float equations of Lava's LIF (:mod:`hardware.loihi.network`) are simulated
with one group of Loihi's roundings at a time -- the 8-bit weights, the 12-bit decays, the threshold
together with the bias and rest potential (rounded together: the export keeps the rest at or below the
threshold, and a threshold rounded alone would make neurons resting at it fire) -- then all of them, and
the integer model itself (``loihi-fixed``, :func:`hardware.loihi.fixed_point.simulate_fixed`), each on the
same input spikes of ``P_test`` held-out points as the Norse back end's float64 simulation.  Printed per
variant: spike agreement with Norse per layer (fraction of equal (step, neuron) entries).

    python experiments/deploy/fixed_point_residual.py runs/deploy/net.nir [more.nir] --P-test 128 --out res.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

VARIANTS = {"nothing": (), "weights": ("w",), "decays": ("decay",), "threshold+rest": ("vth", "bias"),
            "all": ("w", "decay", "vth", "bias")}


def simulate_float(layers, spikes: np.ndarray) -> list[np.ndarray]:
    """:func:`~hardware.loihi.fixed_point.simulate_fixed`'s step structure in real numbers:
    ``u = (1 - du) u + a``, ``v = (1 - dv) v + u + b``, spike if ``v > vth``, ``v = 0`` on spike, one step of
    synaptic delay per layer; ``spikes [steps, N, n_in]`` -> trains ``[steps, N, n_l]``."""
    steps, N = spikes.shape[:2]
    u = [np.zeros((N, L.weight.shape[0])) for L in layers]
    v = [np.tile(np.asarray(L.v_init, dtype=np.float64), (N, 1)) for L in layers]
    a = [np.zeros((N, L.weight.shape[0])) for L in layers]
    out = [np.zeros((steps, N, L.weight.shape[0]), dtype=np.int8) for L in layers]
    for t in range(steps):
        pre = spikes[t].astype(np.float64)
        for l, L in enumerate(layers):
            a_in, a[l] = a[l], pre @ L.weight.T
            u[l] = (1 - L.du) * u[l] + a_in
            v[l] = (1 - L.dv) * v[l] + u[l] + L.bias
            z = v[l] > L.vth
            v[l] = np.where(z, 0.0, v[l])
            out[l][t] = z
            pre = z
    return out


def rounded(real, fixed, what):
    """The float layer ``real`` with the roundings ``what`` of its integer layer ``fixed`` (real units)."""
    from hardware.loihi.fixed_point import ACT_SHIFT, DECAY_UNITY

    S, layer = fixed.scale, real
    if "w" in what:
        layer = layer._replace(weight=fixed.dequantised_weight())
    if "decay" in what:
        layer = layer._replace(du=(fixed.du + 1) / DECAY_UNITY, dv=fixed.dv / DECAY_UNITY)
    if "vth" in what:
        layer = layer._replace(vth=fixed.vth * 2**ACT_SHIFT / S)
    if "bias" in what:
        layer = layer._replace(bias=fixed.bias_mant.astype(np.float64) * 2.0**fixed.bias_exp / S,
                               v_init=fixed.v_init / S)
    return layer


def measure(path: str, P_test: int) -> dict:
    from hardware.deploy import flat_trains
    from hardware.loihi.network import from_nir as loihi_from_nir
    from hardware.loihi.network import run
    from hardware.nir_graph import from_nir, read_nir
    from spiking_rhm.backends.norse.deployed import encode, simulate

    graph = read_nir(path)
    net, lnet = from_nir(graph), loihi_from_nir(graph)
    fixed = lnet.fixed()
    cfg = net.config
    P, _ = cfg.sizes()
    _, test = cfg.rhm.build().split(P, P_test, seed=cfg.seed)
    spikes = encode(net, test.inputs, cfg.seed + 1)  # deploy's spikes of its first batch
    _, _, trains = simulate(net, spikes, record=True)
    reference = flat_trains(trains)
    T, N = spikes.shape[:2]
    x = np.zeros((T + len(fixed) + 1, N, int(np.prod(lnet.input_shape))), dtype=np.int8)
    x[:T] = spikes.numpy().reshape(T, N, -1)
    rows = {}
    for name, what in VARIANTS.items():
        raw = simulate_float([rounded(r, f, what) for r, f in zip(lnet.layers, fixed)], x)
        rows[f"float, rounded: {name}"] = [float((r[l + 1:l + 1 + T] == ref).mean())
                                           for l, (r, ref) in enumerate(zip(raw, reference))]
    res = run(lnet, spikes, "fixed", engine="reference")
    rows["integer model (loihi-fixed)"] = [float((a == b).mean()) for a, b in zip(res.trains, reference)]
    return {"file": str(path), "P_test": P_test, "spike_agreement": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nir", nargs="+")
    parser.add_argument("--P-test", type=int, default=128)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    reports = [measure(p, args.P_test) for p in args.nir]
    for rep in reports:
        print(f"{rep['file']} ({rep['P_test']} held-out points): spike agreement with Norse per layer")
        for name, row in rep["spike_agreement"].items():
            print(f"  {name:<32} {', '.join(f'{a:.4f}' for a in row)}")
    if args.out:
        Path(args.out).write_text(json.dumps(reports, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
