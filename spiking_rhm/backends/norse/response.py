r"""Rate-to-spike response curve of a configuration's LIF operating point (count vs constant drive).

A unit whose rate-network pre-activation is ``a`` receives, at steady state, a synaptic current
``D = g a`` (``g`` = ``spiking.drive``; mean potential ``v_rest + g a``).  The response curve is the
spike count of one neuron over the window (T steps from ``v_init``) with that current held constant
(:func:`~.neurons.response_counts`; with a dithered start, ``v_init = uniform``, the mean count over starts,
:func:`~.neurons.mean_response_counts`), beside the line the rules read the count as,
``count = T rho_h relu(a)`` with ``rho_h = g dt / tau_mem`` (:mod:`.network`).  Closed forms
(:mod:`.neurons`): reset ``zero`` -- first-passage times; reset ``subtract`` -- a staircase
``floor(...)`` linear in the drive when the leak is small.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import torch

from spiking_rhm.backends.norse.network import build_parameters, build_spec, float64_parameters
from spiking_rhm.backends.norse.neurons import mean_response_counts


class ResponseCurve(NamedTuple):
    label: str
    a: torch.Tensor  # rate-network pre-activation
    counts: torch.Tensor  # spikes in the window (the mean over starts with a dithered start)
    ideal: torch.Tensor  # T rho_h relu(a)
    T: int


def response_curve(spiking, a: torch.Tensor | None = None, label: str = "") -> ResponseCurve:
    """The response curve of the operating point in ``spiking`` (a :class:`~spiking_rhm.config.SpikingConfig`)."""
    a = torch.linspace(-0.25, 1.0, 501, dtype=torch.float64) if a is None else a.to(torch.float64)
    spec = build_spec("fcn", 1, 1, 1, 1, 1, 1)
    params = float64_parameters(build_parameters(
        spec, 1.0, dt=spiking.dt, tau_mem=spiking.tau_mem, tau_syn=spiking.tau_syn, tau_pre=spiking.tau_pre,
        tau_elig=spiking.tau_elig, v_th=spiking.v_th, drive=float(spiking.drive), psi_beta=float(spiking.psi_beta),
        v_leak=spiking.v_rest, reset=spiking.reset, v_init=spiking.v_init))
    counts = mean_response_counts(params.drive * a, spiking.T, params.lif, params.dt, params.reset, params.v_init,
                                  params.v_spread)
    ideal = spiking.T * params.rho_hidden * a.clamp(min=0)
    return ResponseCurve(label, a, counts, ideal, spiking.T)


def describe_point(spiking) -> str:
    rest = "v_th" if spiking.v_rest is None else f"{spiking.v_rest:g}"
    return (f"rest {rest}, reset {spiking.reset}, v_init {spiking.v_init}, g {spiking.drive:g}, "
            f"tau_mem {spiking.tau_mem * 1e3:g} ms, T {spiking.T}")


def summary(curve: ResponseCurve, points: Sequence[float] = (0.02, 0.05, 0.1, 0.2, 0.5)) -> dict:
    """Counts at a few pre-activations (those on the curve's grid), the rheobase and the largest count (for tables
    and tests)."""
    fire = curve.a[curve.counts > 0]
    at = {f"{x:g}": float(curve.counts[(curve.a - x).abs().argmin()]) for x in points
          if float(curve.a.min()) <= x <= float(curve.a.max())}
    return {"label": curve.label, "counts_at": at, "rheobase": float(fire.min()) if len(fire) else None,
            "max_count": float(curve.counts.max()), "T": curve.T,
            "saturated": bool(float(curve.counts.max()) >= curve.T)}


def plot_response(curves: Sequence[ResponseCurve], path: str | Path, title: str | None = None) -> Path:
    """Counts vs pre-activation of each curve (solid) and its ideal line ``T rho_h relu(a)`` (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.get_cmap("tab10")
    for i, c in enumerate(curves):
        ax.step(c.a.numpy(), c.counts.numpy(), where="post", color=colors(i), lw=1.4, label=c.label)
        ax.plot(c.a.numpy(), c.ideal.numpy(), color=colors(i), ls="--", lw=0.8)
    ax.set_xlabel("rate-network pre-activation a (constant drive g a)")
    ax.set_ylabel("spikes in the window")
    ax.set_title(title or "LIF response curves (dashed: T rho_h relu(a), what the rules assume)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curves_for(base, variants: Mapping[str, Mapping], a: torch.Tensor | None = None) -> list[ResponseCurve]:
    """One curve per variant: ``base`` (SpikingConfig) with the variant's fields replaced (``a``: the
    pre-activations, :func:`response_curve`'s default grid if None)."""
    import dataclasses

    out = []
    for label, changes in variants.items():
        sp = dataclasses.replace(base, **dict(changes))
        out.append(response_curve(sp, a, label=label or describe_point(sp)))
    return out
