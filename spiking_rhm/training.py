r"""One training loop for every back end.

A back end (:class:`Backend`) only simulates: it presents a batch and returns the gradients of its
trainable tensors (``grad W^l`` from :mod:`spiking_rhm.plasticity`, ``grad beta`` of the readout),
evaluates, and reports what it used.  Everything else is here, the same for the rate network and
Norse::

    for epoch:  perm = randperm(P)                       (generator seed + 7919)
        for batch:  s = cosine(step / total_steps)       (1 for schedule = constant)
            out = backend.step(idx, lr = eta_hidden s, align = step in alignment points)
            SGD(momentum, weight decay) step, group lr = base lr x s
        EpochLog: curve, divergence, test schedule, early stop, progress
    final scores (online readout; linear probe for unsupervised rules), checkpoint, record

Learning rates (:func:`learning_rates`): hidden ``lr x H`` for width-scaled rules (else ``lr``);
readout ``readout_lr x D`` with ``D`` the readout's fan-in, ``readout_lr`` defaulting to the rule's lr
for width-scaled rules and to 1.0 otherwise (mean-field convention).
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, NamedTuple, Protocol, Sequence

import torch
from torch.optim.sgd import sgd

from spiking_rhm.checkpoint import make_checkpoint
from spiking_rhm.epochs import EpochLog, evaluation_fields
from spiking_rhm.errors import ConfigError

Tensor = torch.Tensor


class StepOutput(NamedTuple):
    """What a back end returns for one presented batch."""

    grads: Sequence[Tensor]  # one per tensor of Backend.trainable(), hidden then readout
    loss: Tensor | float  # the batch's mean readout cross-entropy
    wrong: Tensor | int  # misclassified samples of the batch
    size: int  # samples in the batch
    generated: int = 0  # resampled inputs generated for the batch (positive views)
    cosine: list | None = None  # per layer, cosine of the rule's update with the reference (alignment points)
    # per layer, the mean over the batch's samples of the cosine of each sample's own update with the
    # reference's (alignment points; None where the back end does not measure it)
    cosine_per_sample: list | None = None


class Final(NamedTuple):
    """The back end's scores at the end of training."""

    test_error: float
    test_loss: float
    train_error: float
    train_loss: float
    probe: Any  # metrics.LinearProbe (None: not fitted, e.g. after divergence)
    sensitivity: dict | None
    # scores on the validation points (optim.validation > 0): {"online_readout": {"error", "loss"},
    # "probe": {"error", "loss"} or None}
    validation: dict | None = None


class Backend(Protocol):
    """A simulator the loop trains: batches in, gradients and scores out."""

    name: str  # the checkpoint's back end name
    label: str  # the progress bar's prefix
    n_train: int
    supervised: bool
    n_alignment_points: int  # 0: no alignment measured

    def trainable(self) -> tuple[list[Tensor], list[Tensor]]:
        """(hidden tensors, readout tensors) the optimiser updates."""

    def learning_rates(self) -> tuple[float, float]:
        """(hidden, readout) base learning rates."""

    def step(self, idx: Tensor, lr: float, align: bool) -> StepOutput:
        """Present the training points ``idx``; ``lr`` is the rule's own (scheduled) learning rate."""

    def test_error(self) -> float:
        """Test error now (the learning curve's test points)."""

    def final(self, diverged: bool) -> Final:
        """Scores after training."""

    def data_use(self) -> dict:
        """The rule's pair/view data use (``{"pairs": None}`` when it has none)."""

    def checkpoint_weights(self) -> tuple[Sequence[Tensor], Tensor]:
        """(hidden weights, readout weight) of the network a checkpoint stores."""

    def record(self) -> dict:
        """The back end's own record fields (rule, readout, device, ...), after ``lr``."""


def cosine_factor(step: int, total_steps: int, schedule: str, period: float = 1.0) -> float:
    """``(1 + cos(pi step / (period x total))) / 2`` for the cosine schedule (``period < 1``: it rises again
    after ``period x total`` steps, like the reference's CosineAnnealingLR with T_max = 0.8 epochs), 1 for
    ``constant``."""
    return 0.5 * (1 + math.cos(math.pi * step / (period * total_steps))) if schedule == "cosine" else 1.0


def warmup_factor(step: int, total_steps: int, warmup: float) -> float:
    """``min(1, (step + 1) / n_w)``, ``n_w = ceil(warmup x total_steps)``: a linear ramp over the first steps."""
    n_warm = math.ceil(warmup * total_steps)
    return 1.0 if n_warm <= 0 else min(1.0, (step + 1) / n_warm)


ONLINE_READOUTS = ("joint", "frozen")
"""``online_readout`` (a back-end option of every back end): ``joint``, the readout trained with the layers
(supervised rules: the one they learn through), or ``frozen``, a delta rule on the centred frozen top-layer
features trained after the layers (:func:`spiking_rhm.metrics.fit_delta_readout`; the default of unsupervised
rules, whose layers never see a label)."""
LOCAL_READOUT_KIND = ("delta rule on centred frozen features with a bias (trained after the layers; "
                      "metrics.online_readout)")


def online_readout_mode(choice: str | None, supervised: bool, rule_name: str) -> str:
    """The ``online_readout`` of a run: ``choice``, or by default ``joint`` for supervised rules and ``frozen``
    for unsupervised ones (a clear error for an unknown value or ``frozen`` with a supervised rule)."""
    if choice not in (None, *ONLINE_READOUTS):
        raise ConfigError(f"online_readout must be one of {', '.join(ONLINE_READOUTS)}, got {choice!r}")
    if choice is None:
        return "joint" if supervised else "frozen"
    if choice == "frozen" and supervised:
        raise ConfigError(f"online_readout=frozen is for unsupervised rules; {rule_name!r} trains its readout with "
                          f"its layers")
    return choice


def frozen_readout_scores(train_features, train_labels, test_features, test_labels, n_out: int, seed: int,
                          val_features=None, val_labels=None):
    """``(local, scores)``: the frozen local readout (:func:`spiking_rhm.metrics.fit_delta_readout`) fitted on the
    training features and its ``(test_error, test_loss, train_error, train_loss, validation scores or None)``."""
    from spiking_rhm.metrics import fit_delta_readout, probe_scores

    local = fit_delta_readout(train_features, train_labels, test_features, test_labels, n_out, seed=seed)
    m = local.metrics
    val = None if val_features is None else probe_scores(local, val_features, val_labels)
    return local, (m["test_error"], m["test_loss"], m["train_error"], m["train_loss"], val)


def local_readout_record(local) -> dict:
    """The record's ``local_readout`` field of a frozen local readout (empty without one)."""
    if local is None:
        return {}
    return {"local_readout": {"kind": LOCAL_READOUT_KIND, **{k: local.metrics[k] for k in ("epochs", "steps", "lr")}}}


def carve_validation(train, fraction: float):
    """``(train, validation)``: the last ``round(fraction x P)`` of the ``P`` training points (an
    :class:`~spiking_rhm.rhm.Sample`, already in random order) are held out; ``fraction = 0``: no split."""
    import numpy as np

    P = int(train.labels.shape[0])
    if fraction <= 0:
        return train, None
    n_val = int(round(fraction * P))
    if not 1 <= n_val < P:
        raise ConfigError(f"optim.validation = {fraction} of P = {P} gives {n_val} validation points; "
                          f"need at least 1 and fewer than P")
    return train.take(np.arange(P - n_val)), train.take(np.arange(P - n_val, P))


def alignment_points(total_steps: int, n_points: int) -> set[int]:
    """``n_points`` steps evenly spread over ``0 .. total_steps - 1`` (rounded)."""
    if n_points <= 0:
        return set()
    return {int(round(k * (total_steps - 1) / max(1, n_points - 1))) for k in range(n_points)}


def cosine_similarity(a: Tensor, b: Tensor) -> float | None:
    """``<a, b> / (|a| |b|)``, the alignment of a rule's update with a reference gradient (None when a norm is
    0 or not finite)."""
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0 or not torch.isfinite(na * nb):
        return None
    return float((a * b).sum() / (na * nb))


def mean_sample_cosine(a: Tensor, b: Tensor) -> float | None:
    """``mean_n <a_n, b_n> / (|a_n| |b_n|)`` over the samples ``n`` (the first axis) whose two norms are
    positive and finite: the per-sample alignment of a rule's updates with a reference's (None when no
    sample counts)."""
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    ok = (na > 0) & (nb > 0) & torch.isfinite(na * nb)
    if not bool(ok.any()):
        return None
    return float(((a * b).sum(1)[ok] / (na * nb)[ok]).mean())


def mean_cosine_of_inner(ab: Tensor, aa: Tensor, bb: Tensor) -> float | None:
    """``mean_n ab_n / sqrt(aa_n bb_n)`` over the samples whose two squared norms ``aa_n``, ``bb_n`` are positive
    and finite: :func:`mean_sample_cosine` from the samples' inner products (e.g.
    :meth:`~spiking_rhm.plasticity.RateEligibility.sample_inner`) instead of the vectors (None when no
    sample counts)."""
    ok = (aa > 0) & (bb > 0) & torch.isfinite(aa * bb)
    if not bool(ok.any()):
        return None
    return float((ab[ok] / (aa[ok] * bb[ok]).sqrt()).mean())


def alignment_snapshot(step: int, epoch: int, out: StepOutput) -> dict:
    """The record's entry of an alignment step: ``{"step", "epoch", "cosine"}``, plus ``"cosine_per_sample"``
    where the back end measured it."""
    snap = {"step": step, "epoch": epoch, "cosine": out.cosine}
    if out.cosine_per_sample is not None:
        snap["cosine_per_sample"] = out.cosine_per_sample
    return snap


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """Every entry of ``tensors`` is finite: ``max |t|`` is finite (``amax`` propagates NaN; one reduction,
    several times faster than ``isfinite(t).all()``)."""
    return all(t.numel() == 0 or bool(torch.isfinite(t.abs().amax())) for t in tensors)


class MomentumSGD:
    r"""``torch.optim.SGD`` (momentum, weight decay; no dampening or Nesterov) over groups of tensors with a
    learning rate each, by its functional form ``torch.optim.sgd.sgd`` (the optimiser's default per-tensor
    path on the CPU: the same floats, ``tests/test_training.py``; torch's fused kernel is not bitwise equal)
    without the optimiser object's per-step bookkeeping::

        d = g + wd p;   buf <- d (first step), momentum buf + d;   p <- p - lr buf

    A tensor whose gradient is None is skipped (its buffer kept), as ``torch.optim.SGD`` does."""

    def __init__(self, groups: Sequence[Sequence[Tensor]], momentum: float, weight_decay: float):
        self.groups = [list(g) for g in groups]
        self.momentum, self.weight_decay = momentum, weight_decay
        self.bufs: list[list[Tensor | None]] = [[None] * len(g) for g in self.groups]

    def step(self, grads: Sequence[Tensor | None], lrs: Sequence[float]) -> None:
        """One update of every tensor (``grads``: one per tensor, the groups' tensors in order)."""
        grads = iter(grads)
        with torch.no_grad():
            for params, bufs, lr in zip(self.groups, self.bufs, lrs):
                rows = [(i, g) for i, g in ((i, next(grads)) for i in range(len(params))) if g is not None]
                if not rows:
                    continue
                mine = [bufs[i] for i, _g in rows]
                sgd([params[i] for i, _g in rows], [g for _i, g in rows], mine, weight_decay=self.weight_decay,
                    momentum=self.momentum, lr=lr, dampening=0.0, nesterov=False, maximize=False, foreach=False)
                for (i, _g), buf in zip(rows, mine):
                    bufs[i] = buf


def learning_rates(base: float, width_scaled: bool, width: int, readout_lr: float | None, readout_fan_in: int
                   ) -> tuple[float, float]:
    """(hidden, readout) learning rates of the mean-field convention (module docstring)."""
    hidden = base * (width if width_scaled else 1.0)
    readout = readout_lr if readout_lr is not None else (base if width_scaled else 1.0)
    return hidden, readout * readout_fan_in


def split_options(options: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[dict, dict]:
    """(rule options, back-end options with ``defaults`` filled in) from ``cfg.rule_options``;
    ``readout_lr`` must be a positive number or None."""
    rule_opts = {k: v for k, v in options.items() if k not in defaults}
    backend = {**defaults, **{k: v for k, v in options.items() if k in defaults}}
    lr = backend.get("readout_lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ConfigError(f"readout_lr must be a positive number, got {lr!r}")
    return rule_opts, backend


class Plan(NamedTuple):
    """The step schedule of a run: batch size, steps per epoch, epochs, total steps, alignment steps."""

    batch: int
    steps_per_epoch: int
    n_epochs: int
    total_steps: int
    align_at: set[int]


def plan(cfg, P: int, n_alignment_points: int) -> Plan:
    """The :class:`Plan` of ``cfg`` on ``P`` training points (a last short batch is kept when it has >= 2)."""
    batch = min(cfg.optim.batch_size, P)
    steps_per_epoch = P // batch + (1 if P % batch >= 2 else 0)
    n_epochs = cfg.optim.n_epochs(steps_per_epoch)
    total_steps = max(1, n_epochs * steps_per_epoch)
    align_at = alignment_points(total_steps, n_alignment_points) if n_epochs > 0 else set()
    return Plan(batch, steps_per_epoch, n_epochs, total_steps, align_at)


def train(backend: Backend, cfg, progress: bool = False, checkpoint=None, start: float | None = None) -> dict:
    """Train ``backend`` as ``cfg.optim`` says; the metrics dict of the run (never raises on divergence)."""
    start = time.perf_counter() if start is None else start
    P_total, P_test = cfg.sizes()
    P = backend.n_train  # P minus the validation points
    hidden, readout = backend.trainable()
    hidden_lr, readout_lr = backend.learning_rates()
    groups = [(hidden, hidden_lr), (readout, readout_lr)]
    opt = MomentumSGD([hidden, readout], cfg.optim.momentum, cfg.optim.weight_decay)
    trainables = [*hidden, *readout]
    order_gen = torch.Generator().manual_seed(cfg.seed + 7919)

    batch, steps_per_epoch, n_epochs, total_steps, align_at = plan(cfg, P, backend.n_alignment_points)

    alignment, n_generated = [], 0
    step = seen_total = clipped = 0
    clip = cfg.optim.clip
    log = EpochLog(n_epochs, cfg.optim.stop_train_loss, progress, desc=f"{backend.label} P={P}",
                   stop_train_error=cfg.optim.stop_train_error, plateau=cfg.optim.plateau)
    for epoch in range(1, n_epochs + 1):
        perm = torch.randperm(P, generator=order_gen)
        loss_sum, wrong, seen = 0.0, 0, 0
        for k in range(steps_per_epoch):
            idx = perm[k * batch:(k + 1) * batch]
            scale = (cosine_factor(step, total_steps, cfg.optim.schedule, cfg.optim.cosine_period)
                     * warmup_factor(step, total_steps, cfg.optim.warmup))
            out = backend.step(idx, hidden_lr * scale, step in align_at)
            n_generated += out.generated
            if out.cosine is not None:
                alignment.append(alignment_snapshot(step, epoch, out))
            if clip is not None:  # each group's gradient (hidden, readout) to a 2-norm of at most clip
                for param, grad in zip(trainables, out.grads):
                    param.grad = grad
                norms = [torch.nn.utils.clip_grad_norm_(params, clip) for params, _lr in groups if params]
                clipped += any(bool(n > clip) for n in norms)
            opt.step(out.grads, [lr * scale for _params, lr in groups])
            loss_sum = loss_sum + out.loss * out.size
            wrong = wrong + out.wrong
            seen += out.size
            step += 1
        seen_total += seen
        if log.end_epoch(epoch, float(loss_sum) / seen, int(wrong) / seen,
                         params_finite=lambda: all_finite(trainables),
                         test_error=backend.test_error):
            break
    log.close()
    return run_record(backend, cfg, log, alignment, n_generated, step, seen_total, (hidden_lr, readout_lr), start,
                      checkpoint, clipped=clipped)


def run_record(backend: Backend, cfg, log: EpochLog, alignment: list, n_generated: int, steps: int, seen_total: int,
               lrs: tuple[float, float], start: float, checkpoint=None, clipped: int = 0) -> dict:
    """The metrics dict of a trained run: ``backend``'s final scores, ``log``'s curve, the learning rates used
    (shared by :func:`train` and the stacked runs of ``rate_models.stacked``)."""
    diverged = log.diverged
    P_total, P_test = cfg.sizes()
    P = backend.n_train  # P minus the validation points
    scores = backend.final(diverged)
    probe = None if scores.probe is None else scores.probe.metrics
    fields = evaluation_fields(scores.test_error, scores.train_error, probe, backend.supervised, diverged, P_total,
                               P_test, n_generated, backend.data_use())
    if cfg.optim.validation > 0:
        fields["validation"] = validation_fields(scores.validation, backend.supervised, diverged, P_total - P)
        fields["data"]["validation_points"] = P_total - P
    if checkpoint is not None:
        weights, beta = backend.checkpoint_weights()
        make_checkpoint(cfg, weights, beta, None if backend.supervised else scores.probe, backend.name,
                        fields["test_error"]).save(checkpoint)
    own = backend.record()
    return {
        **fields,
        "test_loss": scores.test_loss,
        "train_loss": scores.train_loss,
        "alignment": alignment,
        **({"alignment_reference": own.pop("alignment_reference")} if "alignment_reference" in own else {}),
        "sensitivity": scores.sensitivity,
        **log.record(seen_total),
        "steps": steps,
        "wall_time": time.perf_counter() - start,
        "lr": {"hidden": lrs[0], "readout": lrs[1], "schedule": cfg.optim.schedule,
               **({"warmup": cfg.optim.warmup} if cfg.optim.warmup else {}),
               **({"clip": cfg.optim.clip, "clipped_steps": clipped} if cfg.optim.clip is not None else {})},
        **own,
    }


def validation_fields(scores: dict | None, supervised: bool, diverged: bool, n_val: int) -> dict:
    """``metrics.validation``: both scorings on the validation points and ``error``/``loss`` of the record's
    scoring (online readout for supervised rules, probe otherwise), which selection reads."""
    scores = scores or {}
    online, probe = scores.get("online_readout"), scores.get("probe")
    main = online if supervised or probe is None else probe
    nan = float("nan")
    error = nan if diverged or main is None else main["error"]
    loss = nan if diverged or main is None else main["loss"]
    return {"points": n_val, "error": error, "loss": loss, "scoring": "online readout" if main is online else
            "linear probe", "online_readout": online, "probe": probe}


__all__ = ["Backend", "Final", "MomentumSGD", "Plan", "StepOutput", "ONLINE_READOUTS", "alignment_points", "alignment_snapshot", "all_finite",
           "carve_validation", "cosine_factor", "frozen_readout_scores", "mean_cosine_of_inner", "mean_sample_cosine",
           "learning_rates", "local_readout_record", "online_readout_mode", "plan", "run_record", "split_options", "train", "validation_fields", "warmup_factor"]
