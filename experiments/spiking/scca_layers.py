"""Layer-by-layer diagnosis of a branch rule (sibling-cca) trained on the rate and the Norse back end.

Trains one run per back end (the settings of ``experiments/spiking/rate_vs_norse_L3.toml`` by default) and, before
the first step and at the end of chosen epochs, measures the network's layers on a fixed set of training and
held-out points under two forward models -- the rate network's ReLU chain (``rate``) and the Norse simulation
(``norse``, the run's operating point) -- whatever back end trained the weights:

* per layer: mean activity ``h`` (rate units; Norse: ``count / (T rho_h)``), the fraction of zero entries and of
  units that are silent on every point, the fraction of saturated entries (Norse: one spike per step), the
  participation ratio of the site covariance (effective rank), the pre-activation's mean / std and the fraction
  of sites below the LIF's rheobase ``(v_th - v_rest) / g``;
* the rule's branch objective ``ell^l`` (``SiblingCCA._layer_loss`` with the run's projections ``R``) on the
  branches ``z^l = W^l x^l`` formed from that forward model's layer inputs (what the rule receives);
* a converged linear probe on each layer's flattened features ``[H P_l]`` (train on the training points, error on
  the held-out ones) and its train error.

One JSON line per (back end, epoch, forward model); ``--table FILE`` prints them as Markdown.  ``--save PREFIX``
keeps the final weights; ``--load PREFIX.<backend>.pt`` measures them again without training, with the ``--spiking``
settings changed in the forward model only (e.g. a longer window at test time).

    OMP_NUM_THREADS=1 nice -n 5 python experiments/spiking/scca_layers.py --out results/scca_layers.jsonl
    python experiments/spiking/scca_layers.py --table results/scca_layers.jsonl     # every layer, epoch, forward
    python experiments/spiking/scca_layers.py --compact results/scca_layers.jsonl   # one row per trained network
    python experiments/spiking/scca_layers.py --curve results/scca_layers.jsonl     # objective and probe vs epoch
    python experiments/spiking/scca_layers.py --backend norse --at "" --save results/net --out results/l.jsonl
    python experiments/spiking/scca_layers.py --load results/net.norse.pt --models norse --spiking T=100 \
        --out results/l.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
import tomllib

import numpy as np
import torch

from spiking_rhm.backends.norse.network import initial_state, rates, run_window
from spiking_rhm.config import RunConfig
from spiking_rhm.metrics import fit_linear_probe
from spiking_rhm.network import branch_pre_activations, patches, taps_of
from spiking_rhm.rhm import onehot

Tensor = torch.Tensor


def parse(texts: list[str]) -> dict:
    """``["k=v", ...]`` -> ``{k: v}``, each value read as a TOML literal (number, bool, list), else as a string."""
    out = {}
    for text in texts:
        key, _, raw = text.partition("=")
        try:
            out[key.strip()] = tomllib.loads(f"value = {raw}")["value"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out


def make_config(a, backend: str) -> RunConfig:
    spiking, options = parse(a.spiking), parse(a.rule_option)
    return RunConfig.from_dict({
        "rhm": {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": a.L}, "P": a.P, "P_test": a.P_test, "rule": a.rule,
        "rule_options": options, "backend": backend, "seed": a.seed, "net": {"width": a.width},
        "optim": {"epochs": a.epochs, "batch_size": 32, "min_steps": a.min_steps}, "spiking": spiking})


def participation_ratio(feats: Tensor) -> float:
    """``(sum lambda)^2 / sum lambda^2`` of the covariance of ``feats [n, H]`` (effective rank)."""
    c = torch.cov(feats.T.double())
    if not bool(torch.isfinite(c).all()):
        return float("nan")
    ev = torch.linalg.eigvalsh(c).clamp_min(0)
    return float(ev.sum() ** 2 / (ev * ev).sum().clamp_min(1e-30))


class Probe:
    """Measures a network's layers on fixed points (module docstring)."""

    def __init__(self, cfg: RunConfig, n_points: int):
        from spiking_rhm.backends.norse.build import build_network

        self.cfg = cfg
        rhm = cfg.rhm.build()
        P, P_test = cfg.sizes()
        train, test = rhm.split(P, P_test, seed=cfg.seed)
        self.train = train.take(np.arange(min(n_points, len(train.labels))))
        self.test = test.take(np.arange(min(n_points, len(test.labels))))
        self.v = rhm.v
        self.encoder, self.spec, self.params = build_network(cfg.replace(backend="norse"), rhm.v)
        sp = cfg.spiking
        gain = sp.layer_gain or [1.0] * cfg.rhm.L
        self.rheobase = [(sp.v_th - (sp.v_th if sp.v_rest is None else sp.v_rest)) / (sp.drive * c) for c in gain]

    def layer_inputs(self, hidden: list[Tensor], inputs: np.ndarray, model: str, seed: int):
        """Per layer the input ``[N, C, P_in]`` and output activity ``[N, H, P]`` and, for Norse, the counts."""
        x = onehot(inputs, self.v)  # [N, v, d]
        spec = self.spec
        if model == "rate":
            ins, outs, h = [], [], x
            for W, K in zip(hidden, spec.fan_in):
                ins.append(h)
                a = spec.connectivity.apply(patches(h.transpose(1, 2), spec.patch), W) / math.sqrt(K)
                h = torch.relu(a).transpose(1, 2)
                outs.append(h)
            return ins, outs, None
        gen = torch.Generator().manual_seed(seed)
        spikes = self.encoder(x, gen)
        state = initial_state(spec, self.params, spikes.shape[1], generator=gen)  # draws only with v_init = uniform
        with torch.no_grad():
            res, _ = run_window(spikes, hidden, spec, self.params, state)
        outs = [rates(c, res.steps, self.params) for c in res.counts]
        ins = [spikes.sum(0) / (res.steps * self.params.rho_in[0]), *outs[:-1]]
        return ins, outs, res.counts

    def measure(self, hidden: list[Tensor], rule, projections, model: str) -> dict:
        hidden = [w.detach().float() for w in hidden]
        ins, outs, counts = self.layer_inputs(hidden, self.train.inputs, model, 11)
        t_ins, t_outs, _ = self.layer_inputs(hidden, self.test.inputs, model, 12)
        layers = []
        trained = rule.trained_layers(len(hidden))
        for l, (x, h, W) in enumerate(zip(ins, outs, hidden)):
            z = branch_pre_activations(taps_of(x, self.spec.patch), W, self.spec.connectivity.shared)
            a = z.sum(2)  # [N, H, P]
            sites = h.permute(0, 2, 1).reshape(-1, h.shape[1])
            row = {"layer": l + 1, "h_mean": float(h.mean()), "zero": float((h == 0).float().mean()),
                   "silent_units": float((h.amax((0, 2)) == 0).float().mean()),
                   "pr": participation_ratio(sites), "a_mean": float(a.mean()), "a_std": float(a.std()),
                   "below_rheobase": float((a <= self.rheobase[l]).float().mean()),
                   "a_pos": float((a > 0).float().mean())}
            if counts is not None:
                c = counts[l]
                row["spikes_per_step"] = float(c.mean() / self.encoder.T)
                row["saturated"] = float((c >= self.encoder.T).float().mean())
                # how faithfully the LIF rate follows relu(a) of its own inputs: corr over entries
                r = torch.relu(a).flatten()
                row["corr_relu"] = float(torch.corrcoef(torch.stack([r, h.flatten()]))[0, 1])
                row["slope_relu"] = float((r * h.flatten()).sum() / (r * r).sum().clamp_min(1e-12))
            if l + 1 in trained:
                row["objective"] = float(rule._layer_loss(z, projections[l]))
            fit = fit_linear_probe(h.reshape(len(h), -1), self.train.labels, t_outs[l].reshape(len(t_outs[l]), -1),
                                   self.test.labels, self.spec.n_out)
            row["probe_test"] = fit.metrics["test_error"]
            row["probe_train"] = fit.metrics["train_error"]
            layers.append(row)
        return {"layers": layers}


def backend_of(cfg: RunConfig):
    if cfg.backend == "rate":
        import rate_models  # noqa: F401
        from rate_models.train import RateBackend

        b = RateBackend(cfg)
        return b, (lambda: [w for w in b.params.weights]), b.rule, (lambda: b.state)
    from spiking_rhm.backends.norse.train import NorseBackend

    b = NorseBackend(cfg)
    return b, (lambda: list(b.setup.weights.hidden)), b.rule, (lambda: b.setup.learner.rule_state)


def run(a, backend: str, out):
    from spiking_rhm import training

    cfg = make_config(a, backend)
    probe = Probe(cfg, a.n_points)
    b, hidden, rule, state = backend_of(cfg)
    _, steps_per_epoch, _, _, _ = training.plan(cfg, b.n_train, 0)
    marks = {e * steps_per_epoch: e for e in a.at}
    count = {"step": 0}
    t_measure = [0.0]

    def emit(epoch):
        t0 = time.perf_counter()
        for model in a.models:
            m = probe.measure(hidden(), rule, state().projections, model)
            row = {"backend": backend, "epoch": epoch, "model": model, "seed": a.seed, "P": a.P, "L": a.L,
                   "spiking": dict(s.split("=", 1) for s in a.spiking),
                   "rule_options": dict(s.split("=", 1) for s in a.rule_option), **m}
            print(json.dumps(row), flush=True)
            if out:
                with open(out, "a") as f:
                    f.write(json.dumps(row) + "\n")
        t_measure[0] += time.perf_counter() - t0

    step = b.step

    def wrapped(idx, lr, align):
        if count["step"] in marks:
            emit(marks[count["step"]])
        count["step"] += 1
        return step(idx, lr, align)

    b.step = wrapped
    t0 = time.perf_counter()
    metrics = training.train(b, cfg)
    emit(a.epochs)
    if a.save:
        torch.save({"config": cfg.to_dict(), "hidden": hidden(),
                    "projections": state().projections}, f"{a.save}.{backend}.pt")
    print(json.dumps({"backend": backend, "test_error": metrics["test_error"],
                      "train_error": metrics["train_error"],
                      "wall_s": time.perf_counter() - t0 - t_measure[0]}), flush=True)


def remeasure(a, out) -> None:
    """Measure saved final weights (``--save`` of an earlier run) under the forward models with the ``--spiking``
    settings applied on top of the saved run's (e.g. a longer window at test time only): no training."""
    from spiking_rhm.rules.base import get_rule

    saved = torch.load(a.load, weights_only=False)
    cfg = RunConfig.from_dict(saved["config"])
    trained = cfg.spiking
    cfg = cfg.replace(spiking=dataclasses.replace(trained, **parse(a.spiking)))
    probe = Probe(cfg, a.n_points)
    rule = get_rule(cfg.rule, **dict(cfg.rule_options))
    changed = {k: str(v) for k, v in dataclasses.asdict(cfg.spiking).items() if v != getattr(trained, k)}
    for model in a.models:
        m = probe.measure(saved["hidden"], rule, saved["projections"], model)
        row = {"backend": cfg.backend, "epoch": cfg.optim.epochs, "model": model, "seed": cfg.seed, "P": cfg.sizes()[0],
               "L": cfg.rhm.L, "spiking": {k: str(v) for k, v in dataclasses.asdict(trained).items()
                                           if v != getattr(type(trained)(), k)},
               "measured_with": changed, "rule_options": {}, **m}
        print(json.dumps(row), flush=True)
        if out:
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


def label(r: dict) -> str:
    """A row's settings: the trained run's spiking settings and rule options sorted by name (``defaults`` when none),
    its P when not 1024, and the forward settings it was measured with when they differ from the trained ones
    (``--load``)."""
    text = ", ".join(f"{k} = {v}" for k, v in sorted({**r.get("spiking", {}), **r.get("rule_options", {})}.items()))
    text = text or "defaults"
    if r.get("P", 1024) != 1024:
        text += f", P = {r['P']}"
    if r.get("measured_with"):
        text += "; measured at " + ", ".join(f"{k} = {v}" for k, v in r["measured_with"].items())
    return text


def table(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if '"layers"' in line]
    print("| trained on | settings | epoch | forward | layer | h mean | zero | silent units | eff. rank | a mean / std "
          "| a <= rheobase | spikes/step | corr(h, relu a) | slope | objective | probe train / test |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        settings = label(r)
        for x in r["layers"]:
            sps = f"{x['spikes_per_step']:.3f}" if "spikes_per_step" in x else ""
            corr = f"{x['corr_relu']:.2f}" if "corr_relu" in x else ""
            slope = f"{x['slope_relu']:.2f}" if "slope_relu" in x else ""
            obj = f"{x['objective']:.3f}" if "objective" in x else ""
            print(f"| {r['backend']} | {settings} | {r['epoch']} | {r['model']} | {x['layer']} | "
                  f"{x['h_mean']:.3f} | {x['zero']:.2f} | {x['silent_units']:.2f} | {x['pr']:.1f} | "
                  f"{x['a_mean']:.3f} / {x['a_std']:.3f} | {x['below_rheobase']:.2f} | {sps} | {corr} | {slope} | "
                  f"{obj} | {x['probe_train']:.3f} / {x['probe_test']:.3f} |")


def compact(path: str) -> None:
    """One row per (trained on, settings) at the last epoch measured: per layer (1 / 2 / 3 ...) the Norse forward's
    spikes per step and zero fraction, and the probe's test error under the Norse and the rate forward model."""
    rows = [json.loads(line) for line in open(path) if '"layers"' in line]
    last: dict = {}
    for r in rows:
        key = (r["backend"], label(r), r["model"])
        if key not in last or r["epoch"] >= last[key]["epoch"]:
            last[key] = r
    slash = lambda xs, f: " / ".join(f.format(x) for x in xs)  # noqa: E731
    print("| trained on | settings | epoch | spikes per step (Norse) | zero fraction (Norse / rate) | "
          "probe test error, Norse forward | probe test error, rate forward |")
    print("|---|---|---|---|---|---|---|")
    for (backend, settings, model), r in sorted(last.items()):
        if model != "norse":
            continue
        rate = last.get((backend, settings, "rate"))
        n = r["layers"]
        zeros = slash([x["zero"] for x in n], "{:.2f}") + (" (" + slash([x["zero"] for x in rate["layers"]], "{:.2f}")
                                                           + ")" if rate else "")
        print(f"| {backend} | {settings} | {r['epoch']} | {slash([x['spikes_per_step'] for x in n], '{:.3f}')} | "
              f"{zeros} | {slash([x['probe_test'] for x in n], '{:.3f}')} | "
              f"{slash([x['probe_test'] for x in rate['layers']], '{:.3f}') if rate else ''} |")


def curve(path: str) -> None:
    """Per trained network and epoch, under its own back end's forward model: the branch objective and the probe's
    test error of every layer (``l1 / l2 / ...``; layer 1 is not trained by default, no objective)."""
    rows = [json.loads(line) for line in open(path) if '"layers"' in line]
    print("| trained on | settings | epoch | objective per layer | probe test error per layer |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["model"] != r["backend"]:
            continue
        settings = label(r)
        obj = " / ".join(f"{x['objective']:.3f}" if "objective" in x else "--" for x in r["layers"])
        probe = " / ".join(f"{x['probe_test']:.3f}" for x in r["layers"])
        print(f"| {r['backend']} | {settings} | {r['epoch']} | {obj} | {probe} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="rate,norse")
    ap.add_argument("--rule", default="sibling-cca")
    ap.add_argument("--L", type=int, default=3)
    ap.add_argument("--P", type=int, default=1024)
    ap.add_argument("--P-test", type=int, default=1024)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-steps", type=int, default=400)
    ap.add_argument("--at", default="0,3,10", help="epochs (before their first step) to measure at; and the end")
    ap.add_argument("--models", default="rate,norse", help="forward models to measure with")
    ap.add_argument("--n-points", type=int, default=1024, help="training and held-out points measured")
    ap.add_argument("--spiking", action="append", default=[], metavar="K=V", help="cfg.spiking field (repeatable)")
    ap.add_argument("--rule-option", action="append", default=[], metavar="K=V", help="rule option (repeatable)")
    ap.add_argument("--out", help="append JSON lines here")
    ap.add_argument("--load", help="measure the weights saved by --save (no training); --spiking changes the forward")
    ap.add_argument("--save", help="save the final hidden weights and projections to SAVE.<backend>.pt")
    ap.add_argument("--table", help="print the Markdown table of a results file and stop")
    ap.add_argument("--compact", help="print one row per trained network (last epoch) of a results file and stop")
    ap.add_argument("--curve", help="print the objective and probe over training of a results file and stop")
    a = ap.parse_args(argv)
    if a.curve:
        return curve(a.curve)
    if a.table:
        return table(a.table)
    if a.compact:
        return compact(a.compact)
    a.at = [int(e) for e in a.at.split(",") if e]
    a.models = a.models.split(",")
    if a.load:
        return remeasure(a, a.out)
    for backend in a.backend.split(","):
        run(a, backend, a.out)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
