r"""Deploying a trained network: Norse (the reference) vs Lava float vs Loihi fixed point, side by side.

:func:`evaluate_deployment` takes a NIR graph written by :func:`hardware.nir_graph.to_nir`,
rebuilds the Norse network from it, draws the run's own held-out test points (the split of
its config), encodes them once, and runs the **same input spikes** through

* ``norse``        -- :func:`spiking_rhm.backends.norse.deployed.simulate` (float64),
* ``lava-float``   -- Lava ``floating_pt`` processes (:mod:`hardware.loihi.network`),
* ``loihi-fixed``  -- Lava's bit-accurate ``fixed_pt`` processes, or the numpy integer model
                      with ``engine="reference"`` (bit-identical, ``tests/hardware``),
* ``<reader>-nir``  -- the network exported in the conventions of another library
                      (:data:`hardware.nir_graph.PROFILES`), written to a file, read back with that
                      library's *own* importer and run on the same spikes (:data:`READERS`).

It reports per back end: test error, agreement of predictions with Norse, spike agreement per
layer (fraction of equal (step, neuron) entries), correlation of spike counts, wall time, and
the quantisation of every layer.  Batches are presented as copies of the network side by side.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

import numpy as np
import torch

from spiking_rhm.errors import ConfigError

LOCAL_TARGETS = ("norse", "lava-float", "loihi-fixed")


class Reader(NamedTuple):
    """A foreign NIR importer as a deploy target."""

    profile: str  # the export profile written for it (hardware.nir_graph.PROFILES)
    package: str  # what to install
    load: Callable[[Any], Any]  # NIR graph -> the library's module
    step: Callable[[Any, torch.Tensor, Any], tuple[torch.Tensor, Any]]  # (module, x_t, state) -> (out_t, state)


def _load_norse(graph):
    import norse.torch

    return norse.torch.from_nir(graph, dt=float(graph.metadata["dt"]))


def _load_snntorch(graph):
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        return import_from_nir(graph)


def _load_spikingjelly(graph):
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    return import_from_nir(graph, dt=float(graph.metadata["dt"]))


def _step_stateless(module, x, state):
    out = module(x)  # snnTorch keeps its state in the modules (init_hidden=True)
    return (out[0] if isinstance(out, tuple) else out), None


READERS: dict[str, Reader] = {
    "norse-nir": Reader("norse", "norse", _load_norse, lambda module, x, state: module(x, state)),
    "snntorch-nir": Reader("snntorch", "snntorch", _load_snntorch, _step_stateless),
    "spikingjelly-nir": Reader("spikingjelly", "--no-deps spikingjelly==2.0.0 loguru", _load_spikingjelly,
                               lambda module, x, state: module(x, state)),
}
TARGETS = LOCAL_TARGETS + tuple(READERS)


class ReaderResult(NamedTuple):
    logits: np.ndarray  # [N, n_out]
    trains: list[np.ndarray]  # per layer [T, N, n_l] int8, neuron order j * P + p


def run_reader(target: str, path: str | Path, spikes: torch.Tensor, dt: float | None = None) -> ReaderResult:
    """Read the NIR file ``path`` with ``target``'s importer and run it on ``spikes [T, N, ...]`` from its
    initial state: logits = mean of the output over the steps; spikes recorded at the spiking nodes.

    ``dt``: the step the importer is given where it takes one (default: the file's ``dt`` metadata).
    """
    import nir

    from hardware.nir_sim import SPIKING, input_shape, load_chain

    reader = READERS[target]
    graph = nir.read(path, type_check=False)
    chain_nodes = load_chain(graph)
    names = [n.name for n in chain_nodes if n.kind in SPIKING]
    if dt is not None:
        graph.metadata = {**(graph.metadata or {}), "dt": float(dt)}
    try:
        module = reader.load(graph)  # a fresh graph: importers may edit it
    except ImportError as err:
        raise ConfigError(f"target {target} needs {reader.package} ({err}); "
                          f"pip install -c constraints.txt {reader.package}") from None
    record: dict[str, list[np.ndarray]] = {n: [] for n in names}

    def hook(name):
        def save(mod, inputs, out):
            z = out[0] if isinstance(out, tuple) else out
            record[name].append(z.detach().cpu().numpy().astype(np.int8))
        return save

    handles = [module.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    T, N = spikes.shape[:2]
    x = spikes.reshape(T, N, *input_shape(chain_nodes)).float()
    state, total = None, 0.0
    try:
        with torch.no_grad():
            for t in range(T):
                out, state = reader.step(module, x[t], state)
                total = total + out.detach().double()
    finally:
        for h in handles:
            h.remove()
    return ReaderResult((total / max(T, 1)).numpy(), [np.stack(record[n]).reshape(T, N, -1) for n in names])


def evaluate_foreign(path: str | Path, rhm, spiking, P_test: int = 500, convention: str = "step",
                     targets: Iterable[str] = ("sim",), batch: int = 250, seed: int = 0,
                     dt: float | None = None) -> dict:
    """Run a NIR file written by any tool (no spiking-rhm metadata) on ``P_test`` RHM points.

    ``rhm`` (:class:`~spiking_rhm.config.RHMConfig`) and ``spiking`` (:class:`~spiking_rhm.config.SpikingConfig`:
    code, T, dt, max_rate) give the task and the spike code; the graph's Input must take the code's
    ``(C, d)`` or its row-major flattening, its output ``n_c`` values (the prediction is the argmax).
    ``sim`` is :func:`hardware.nir_sim.run_chain` under ``convention`` at the time step ``dt`` the file's
    time constants are meant for (default: its ``dt`` metadata, else the code's ``dt``; snnTorch writes
    its files for ``1e-4`` and does not say so); a reader target (``norse-nir``) runs the same file with that library's
    importer at the same ``dt``, compared with ``sim``.
    """
    from hardware.nir_graph import read_nir
    from hardware.nir_sim import CONVENTIONS, SPIKING, input_shape, load_chain, run_chain
    from spiking_rhm.backends.norse.inputs import SpikeEncoder
    from spiking_rhm.rhm import onehot

    targets = list(targets)
    unknown = sorted(set(targets) - {"sim", *READERS})
    if unknown or "sim" not in targets:
        raise ConfigError(f"foreign graph targets: sim (required) and {', '.join(READERS)}; got {', '.join(targets)}")
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown input convention {convention!r}; valid: {', '.join(CONVENTIONS)}")
    if not (isinstance(P_test, int) and P_test >= 1) or not (isinstance(batch, int) and batch >= 1):
        raise ConfigError(f"P_test and batch must be positive integers, got {P_test!r}, {batch!r}")
    graph = read_nir(path, type_check=False)
    nodes = load_chain(graph)
    task = rhm.build()
    encoder = SpikeEncoder(spiking.code, spiking.T, spiking.dt, spiking.max_rate, rhm.v)
    C, d = encoder.channels, task.d
    shape = input_shape(nodes)
    if shape not in ((C, d), (C * d,)):
        raise ConfigError(f"the graph's input {shape} does not take the {spiking.code} code of this RHM: "
                          f"({C}, {d}) or ({C * d},)")
    if P_test > task.P_max:
        raise ConfigError(f"P_test = {P_test} points do not exist: P_max = {task.P_max}")
    _, test = task.split(0, P_test, seed=seed)
    if dt is None:
        dt = float((graph.metadata or {}).get("dt", spiking.dt))  # the file's time step, else the code's
    if not dt > 0:
        raise ConfigError(f"dt must be positive, got {dt!r}")
    spiking_nodes = [n.name for n in nodes if n.kind in SPIKING]
    preds = {t: [] for t in targets}
    agree = {t: [] for t in targets}
    counts = {n: 0.0 for n in spiking_nodes}
    for k, i in enumerate(range(0, P_test, batch)):
        idx = np.arange(i, min(P_test, i + batch))
        x = onehot(test.inputs[idx], rhm.v, dtype=torch.float64)
        spikes = encoder(x, torch.Generator().manual_seed(seed + 1 + k))
        spikes = spikes.reshape(spikes.shape[0], spikes.shape[1], *shape)
        logits, trains = run_chain(nodes, spikes, dt, convention)
        if logits.shape[1] != rhm.n_c:
            raise ConfigError(f"the graph's output has {logits.shape[1]} values, the RHM has n_c = {rhm.n_c} classes")
        preds["sim"].append(logits.argmax(1).numpy())
        sim_trains = [trains[n].reshape(trains[n].shape[0], trains[n].shape[1], -1).numpy() for n in spiking_nodes]
        for n, z in zip(spiking_nodes, sim_trains):
            counts[n] += float(z.sum()) / z.shape[2]  # spikes per neuron
        for target in [t for t in targets if t != "sim"]:
            res = run_reader(target, path, spikes, dt=dt)
            preds[target].append(res.logits.argmax(1))
            agree[target].append([(a == b).mean() for a, b in zip(res.trains, sim_trains)])
    sim_pred = np.concatenate(preds["sim"])
    report = {"P_test": P_test, "seed": seed, "convention": convention, "dt": dt, "code_dt": spiking.dt,
              "steps": spiking.T,
              "code": spiking.code, "nodes": [f"{n.name}:{n.kind}" for n in nodes],
              "rates_hz": {n: counts[n] / (P_test * spiking.T * spiking.dt) for n in spiking_nodes}, "targets": {}}
    sizes = [len(p) for p in preds["sim"]]
    for target in targets:
        pred = np.concatenate(preds[target])
        row = {"test_error": float((pred != test.labels).mean()), "agreement_with_sim": float((pred == sim_pred).mean())}
        if target != "sim":
            row["spike_agreement"] = [float(a) for a in np.average(np.array(agree[target]), axis=0, weights=sizes)]
        report["targets"][target] = row
    return report


def flat_trains(trains: list[torch.Tensor]) -> list[np.ndarray]:
    """Norse trains ``[T, N, P, H]`` in the NIR/Lava neuron order ``j * P + p``: ``[T, N, H * P]`` (int8 0/1)."""
    return [z.detach().cpu().numpy().transpose(0, 1, 3, 2).reshape(z.shape[0], z.shape[1], -1).astype(np.int8)
            for z in trains]


def quantisation_summary(loihi_net) -> list[dict]:
    """Per layer: scale S, weight exponent, decays, threshold, the weights' worst rounding relative to the
    largest weight, and the threshold's relative rounding."""
    from hardware.loihi.fixed_point import threshold_error

    rows = []
    for l, (real, fixed) in enumerate(zip(loihi_net.layers, loihi_net.fixed()), start=1):
        err = np.abs(fixed.dequantised_weight() - real.weight).max()
        rows.append({"layer": l, "scale": fixed.scale, "weight_exp": fixed.weight_exp, "du": fixed.du, "dv": fixed.dv,
                     "vth": fixed.vth, "max_weight": float(np.abs(real.weight).max()),
                     "max_weight_error": float(err), "relative_weight_error": float(err / np.abs(real.weight).max()),
                     "threshold_error": threshold_error(real, fixed)})
    return rows


def evaluate_deployment(graph, P_test: int = 500, targets: Iterable[str] = LOCAL_TARGETS, engine: str = "lava",
                        batch: int = 250, seed: int | None = None, progress: bool = False,
                        figures: str | Path | None = None) -> dict:
    """Run the graph's network on ``P_test`` held-out points on each target; returns the report dict.

    ``figures``: a folder for :func:`plot_deployment`'s rasters and count scatters (first batch);
    their paths are added to the report under ``figures``.
    """
    from hardware.loihi.network import from_nir as loihi_from_nir, run
    from hardware.nir_graph import from_nir, to_nir, write_nir
    from spiking_rhm.backends.norse.deployed import encode, simulate

    targets = list(targets)
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        raise ConfigError(f"unknown target(s) {', '.join(unknown)}; valid: {', '.join(TARGETS)}")
    if not (isinstance(P_test, int) and P_test >= 1) or not (isinstance(batch, int) and batch >= 1):
        raise ConfigError(f"P_test and batch must be positive integers, got {P_test!r}, {batch!r}")
    net = from_nir(graph)
    cfg = net.config
    loihi_net = loihi_from_nir(graph)
    P, _ = cfg.sizes()
    rhm = cfg.rhm.build()
    if P + P_test > rhm.P_max:
        raise ConfigError(f"P_test = {P_test} held-out points do not exist: P_max - P = {rhm.P_max - P}")
    _, test = rhm.split(P, P_test, seed=cfg.seed)
    seed = cfg.seed + 1 if seed is None else int(seed)
    wanted = ["norse", *[t for t in targets if t != "norse"]]
    with tempfile.TemporaryDirectory(prefix="spiking-rhm-deploy-") as tmp:
        files = {t: write_nir(Path(tmp) / f"{READERS[t].profile}.nir", to_nir(net, profile=READERS[t].profile))
                 for t in wanted if t in READERS}
        preds = {t: [] for t in wanted}
        agree = {t: [] for t in wanted}
        corr = {t: [] for t in wanted}
        wall = dict.fromkeys(wanted, 0.0)
        chunks = range(0, P_test, batch)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="deploy", unit="batch")
        first: dict[str, list[np.ndarray]] = {}
        for k, i in enumerate(chunks):
            idx = np.arange(i, min(P_test, i + batch))
            spikes = encode(net, test.inputs[idx], seed + k)
            start = time.perf_counter()
            _, logits, trains = simulate(net, spikes, record=True)
            wall["norse"] += time.perf_counter() - start
            reference = flat_trains(trains)
            if k == 0:
                first["norse"] = reference
            preds["norse"].append(logits.argmax(1).numpy())
            for target in wanted[1:]:
                start = time.perf_counter()
                if target in READERS:
                    res = run_reader(target, files[target], spikes)
                elif target == "lava-float":
                    res = run(loihi_net, spikes, "float")
                else:
                    res = run(loihi_net, spikes, "fixed", engine=engine)
                wall[target] += time.perf_counter() - start
                if k == 0:
                    first[target] = res.trains
                preds[target].append(res.logits.argmax(1))
                agree[target].append([(a == b).mean() for a, b in zip(res.trains, reference)])
                corr[target].append([(a.sum(0).ravel(), b.sum(0).ravel()) for a, b in zip(res.trains, reference)])
    labels = test.labels
    norse_pred = np.concatenate(preds["norse"])
    report = {"P": P, "P_test": P_test, "seed": seed, "engine": engine, "steps": net.steps, "dt": net.params.dt,
              "config": cfg.to_dict(), "quantisation": quantisation_summary(loihi_net), "targets": {}}
    for target in wanted:
        pred = np.concatenate(preds[target])
        row = {"test_error": float((pred != labels).mean()), "agreement_with_norse": float((pred == norse_pred).mean()),
               "wall_time": wall[target]}
        if target in READERS:
            row["profile"] = READERS[target].profile
        if target != "norse":
            sizes = [len(p) for p in preds[target]]
            per_layer = np.average(np.array(agree[target]), axis=0, weights=sizes)
            row["spike_agreement"] = [float(a) for a in per_layer]
            row["count_correlation"] = [_corr(np.concatenate([c[l][0] for c in corr[target]]),
                                              np.concatenate([c[l][1] for c in corr[target]]))
                                        for l in range(len(per_layer))]
        report["targets"][target] = row
    if figures is not None:
        report["figures"] = [str(p) for p in plot_deployment(first, net.params.dt, figures,
                                                             name="loihi-fixed (reference)" if engine == "reference"
                                                             else None)]
    return report


def plot_deployment(trains: dict[str, list[np.ndarray]], dt: float, out: str | Path, name: str | None = None
                    ) -> list[Path]:
    """Two figures in ``out``: ``rasters.png`` (sample 0, every layer, each target; spikes that differ
    from Norse in red: extra as dots, missing as open circles) and ``counts.png`` (spike counts per
    neuron and sample, each target against Norse).  ``trains[target][l]``: ``[T, N, n_l]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    targets = list(trains)
    L = len(trains["norse"])
    ms = dt * 1e3
    label = {t: (name if (name and t == "loihi-fixed") else t) for t in targets}
    fig, axes = plt.subplots(L, len(targets), figsize=(4.2 * len(targets), 2.4 * L), squeeze=False, sharex=True)
    for l in range(L):
        ref = trains["norse"][l][:, 0]
        for c, target in enumerate(targets):
            ax, z = axes[l, c], trains[target][l][:, 0]
            t, n = np.nonzero(z & ref if target != "norse" else z)
            ax.scatter((t + 0.5) * ms, n, marker="|", s=10, color="k", lw=0.8)
            if target != "norse":
                t, n = np.nonzero(z & ~ref)
                ax.scatter((t + 0.5) * ms, n, s=9, color="tab:red", label="extra")
                t, n = np.nonzero(ref & ~z)
                ax.scatter((t + 0.5) * ms, n, s=12, facecolors="none", edgecolors="tab:red", label="missing")
                same = float((z == ref).mean())
                ax.set_title(f"{label[target]}, layer {l + 1}: {same:.4f} equal", fontsize=8)
            else:
                ax.set_title(f"norse, layer {l + 1}: {int(z.sum())} spikes", fontsize=8)
            ax.set_ylim(-0.5, z.shape[1] - 0.5)
            if c == 0:
                ax.set_ylabel("neuron (j P + p)")
    for ax in axes[-1]:
        ax.set_xlabel("time (ms)")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    if handles:
        axes[0, -1].legend(handles, labels, fontsize=6, loc="upper right")
    fig.suptitle("spike trains of one held-out point on each target (differences from Norse in red)")
    fig.tight_layout()
    paths = [out / "rasters.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    others = [t for t in targets if t != "norse"]
    if others:
        fig, axes = plt.subplots(len(others), L, figsize=(3.2 * L, 3.0 * len(others)), squeeze=False)
        for r, target in enumerate(others):
            for l in range(L):
                x, y = trains["norse"][l].sum(0).ravel(), trains[target][l].sum(0).ravel()
                ax = axes[r, l]
                ax.scatter(x, y, s=3, alpha=0.3, color="tab:blue")
                top = max(1, int(max(x.max(), y.max())))
                ax.plot([0, top], [0, top], color="k", lw=0.8)
                ax.set_title(f"{label[target]}, layer {l + 1}", fontsize=8)
                ax.set_xlabel("spikes (norse)")
                ax.set_ylabel(f"spikes ({target})")
        fig.suptitle("spike count per neuron and sample over the window (first batch)")
        fig.tight_layout()
        paths.append(out / "counts.png")
        fig.savefig(paths[1], dpi=110)
        plt.close(fig)
    return paths


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def format_report(report: dict) -> str:
    """A plain-text table of :func:`evaluate_deployment`'s report."""
    lines = [f"P = {report['P']} (training), P_test = {report['P_test']} held-out points, T = {report['steps']} steps "
             f"of {report['dt'] * 1e3:g} ms, spike seed {report['seed']}", ""]
    head = (f"{'target':<17} {'test error':>10} {'= norse':>8}  {'spike agreement per layer':<28} "
            f"{'count corr':<22} {'time':>7}")
    lines += [head, "-" * len(head)]
    for target, row in report["targets"].items():
        spikes = ", ".join(f"{a:.4f}" for a in row.get("spike_agreement", [])) or "(reference)"
        corr = ", ".join("-" if c is None else f"{c:.3f}" for c in row.get("count_correlation", []))
        name = target + (" (ref)" if target == "loihi-fixed" and report["engine"] == "reference" else "")
        lines.append(f"{name:<17} {row['test_error']:>10.4f} {row['agreement_with_norse']:>8.4f}  {spikes:<28} "
                     f"{corr:<22} {row['wall_time']:>6.1f}s")
    lines += ["", "fixed point per layer: scale S, weight exponent, max |w| (u units), "
                  "worst weight rounding (relative to max |w|), threshold rounding"]
    for q in report["quantisation"]:
        lines.append(f"  layer {q['layer']}: S = {q['scale']:.6g}, e = {q['weight_exp']}, du = {q['du']}, "
                     f"dv = {q['dv']}, vth = {q['vth']}, max |w| = {q['max_weight']:.4g}, "
                     f"rounding <= {q['relative_weight_error']:.2%}, threshold {q.get('threshold_error', 0):.1e}")
    return "\n".join(lines)


__all__ = ["LOCAL_TARGETS", "READERS", "TARGETS", "Reader", "ReaderResult", "evaluate_deployment", "run_reader", "evaluate_foreign", "flat_trains", "format_report", "plot_deployment",
           "quantisation_summary"]
