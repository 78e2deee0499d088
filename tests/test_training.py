"""The one training loop (spiking_rhm.training) with a toy back end: y = w x, squared loss."""

import math

import pytest
import torch

from spiking_rhm.config import OptimConfig, RHMConfig, RunConfig
from spiking_rhm.errors import ConfigError
from spiking_rhm.training import Final, StepOutput, alignment_points, cosine_factor, learning_rates, split_options
from spiking_rhm.training import cosine_similarity, mean_cosine_of_inner, mean_sample_cosine
from spiking_rhm.training import train


class Toy:
    """One weight fitting w* = 2 on P points; the loss is (w - 2)^2, so SGD steps are checkable by hand."""

    name, label, supervised, n_alignment_points = "rate", "toy", True, 2

    def __init__(self, P, w0=0.0):
        self.n_train = P
        self.w = torch.tensor([w0])
        self.lrs, self.batches = [], []

    def trainable(self):
        return [self.w], []

    def learning_rates(self):
        return 0.25, 1.0

    def step(self, idx, lr, align):
        self.lrs.append(lr)
        self.batches.append(sorted(idx.tolist()))
        loss = float((self.w - 2) ** 2)
        return StepOutput([2 * (self.w - 2)], loss, 0, len(idx), cosine=[1.0] if align else None)

    def test_error(self):
        return 0.0

    def final(self, diverged):
        return Final(0.0, 0.0, 0.0, 0.0, None, None)

    def data_use(self):
        return {"pairs": None}

    def checkpoint_weights(self):  # pragma: no cover - not called without a checkpoint
        raise AssertionError

    def record(self):
        return {"readout": "toy"}


def _cfg(**optim):
    return RunConfig(rhm=RHMConfig(v=4, m=2, n_c=2, s=2, L=2), P=8, P_test=4,
                     optim=OptimConfig(**{"epochs": 2, "batch_size": 4, "momentum": 0.0, "stop_train_loss": 0.0,
                                          **optim}))


def test_loop_runs_sgd_with_the_cosine_schedule_over_every_point():
    toy = Toy(8)
    rec = train(toy, _cfg())
    assert rec["steps"] == 4 and rec["epochs_run"] == 2
    assert toy.lrs == pytest.approx([0.25 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])
    w = 0.0
    for lr in toy.lrs:  # plain SGD on (w - 2)^2 with the scheduled rates
        w -= lr * 2 * (w - 2)
    assert float(toy.w) == pytest.approx(w)
    assert sorted(toy.batches[0] + toy.batches[1]) == list(range(8))  # an epoch is a permutation
    assert [a["step"] for a in rec["alignment"]] == [0, 3] and rec["readout"] == "toy"
    assert rec["lr"] == {"hidden": 0.25, "readout": 1.0, "schedule": "cosine"}


def test_loop_stops_on_divergence():
    rec = train(Toy(8, w0=float("inf")), _cfg())
    assert rec["diverged"] and rec["epochs_run"] == 1 and math.isnan(rec["test_error"])


def test_helpers():
    assert cosine_factor(0, 10, "cosine") == 1.0 and cosine_factor(5, 10, "constant") == 1.0
    assert alignment_points(11, 3) == {0, 5, 10} and alignment_points(11, 0) == set()
    assert learning_rates(0.5, True, 8, None, 4) == (4.0, 2.0)
    assert learning_rates(0.5, False, 8, 3.0, 4) == (0.5, 12.0)
    assert split_options({"a": 1, "readout_lr": 2}, {"readout_lr": None}) == ({"a": 1}, {"readout_lr": 2})
    with pytest.raises(ConfigError, match="readout_lr must be a positive number"):
        split_options({"readout_lr": -1}, {"readout_lr": None})


def test_mean_sample_cosine_is_the_mean_of_per_sample_cosines_over_the_samples_that_count():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 3, 4, generator=gen), torch.randn(5, 3, 4, generator=gen)
    b[2] = 0  # a sample with no reference update does not count
    want = [cosine_similarity(a[n], b[n]) for n in range(5)]
    want = sum(w for w in want if w is not None) / 4
    assert math.isclose(mean_sample_cosine(a, b), want, rel_tol=1e-6)
    assert math.isclose(mean_sample_cosine(a, 3 * a), 1.0, rel_tol=1e-6)
    assert math.isclose(mean_sample_cosine(a, -a), -1.0, rel_tol=1e-6)
    assert mean_sample_cosine(a, torch.zeros_like(a)) is None


def test_mean_cosine_of_inner_products_is_mean_sample_cosine():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 12, generator=gen, dtype=torch.float64), torch.randn(5, 12, generator=gen,
                                                                                dtype=torch.float64)
    b[2] = 0
    a[3, 0] = float("nan")  # a sample with a non-finite update does not count either

    def inner(x, y):
        return (x * y).sum(1)

    got = mean_cosine_of_inner(inner(a, b), inner(a, a), inner(b, b))
    assert math.isclose(got, mean_sample_cosine(a, b), rel_tol=1e-12)
    assert mean_cosine_of_inner(inner(a, b), inner(a, a), inner(b, b) * 0) is None


def test_warmup_ramps_the_scheduled_rate():
    from spiking_rhm.training import warmup_factor

    toy = Toy(8)
    rec = train(toy, _cfg(warmup=0.5, schedule="constant"))  # 4 steps, 2 of them warm-up
    assert toy.lrs == pytest.approx([0.125, 0.25, 0.25, 0.25])
    assert rec["lr"]["warmup"] == 0.5
    assert warmup_factor(0, 10, 0.0) == 1.0 and warmup_factor(0, 10, 0.3) == pytest.approx(1 / 3)


def test_clip_bounds_each_step_by_lr_times_clip():
    toy = Toy(8, w0=-100.0)  # gradient 2 (w - 2) = -204: clipped to norm 0.5
    rec = train(toy, _cfg(clip=0.5, schedule="constant", epochs=1))
    assert float(toy.w) == pytest.approx(-100.0 + 2 * 0.25 * 0.5)
    assert rec["lr"]["clip"] == 0.5 and rec["lr"]["clipped_steps"] == 2
    with pytest.raises(ConfigError, match="optim.clip"):
        _cfg(clip=0.0)


def _stops(losses, errors, **kwargs):
    """(epoch, reason) at which an EpochLog fed these per-epoch train losses and errors stops."""
    from spiking_rhm.epochs import EpochLog

    log = EpochLog(len(losses), kwargs.pop("stop_train_loss", 0.0), **kwargs)
    for epoch, (loss, error) in enumerate(zip(losses, errors), 1):
        if log.end_epoch(epoch, loss, error, params_finite=lambda: True, test_error=lambda: 0.5):
            break
    return log.epochs_run, log.stop_reason, log.record(1)["stopped_early_at_epoch"]


def test_stop_rules_train_error_plateau_and_budget():
    losses, errors = [2.0, 1.0, 0.5, 0.4999, 0.4998, 0.4997, 0.3], [0.8, 0.5, 0.2, 0.05, 0.04, 0.0, 0.0]
    assert _stops(losses, errors) == (7, "budget", None)
    assert _stops(losses, errors, stop_train_error=0.05) == (4, "train_error", 4)
    assert _stops(losses, errors, stop_train_error=0.0) == (6, "train_error", 6)
    # 0.4999, 0.4998, 0.4997 improve 0.5 by less than 0.1 %: three epochs without a new least loss
    assert _stops(losses, errors, plateau=3) == (6, "plateau", 6)
    assert _stops(losses, errors, plateau=4) == (7, "budget", None)
    assert _stops(losses, errors, stop_train_loss=0.45) == (7, "train_loss", 7)
    assert _stops([1.0, float("nan")], [0.5, 0.5], stop_train_error=0.0) == (2, "diverged", None)


def test_loop_records_why_it_stopped():
    rec = train(Toy(8), _cfg(epochs=5, stop_train_error=0.0))  # the toy misclassifies nothing
    assert rec["epochs_run"] == 1 and rec["stop_reason"] == "train_error" and rec["epochs_planned"] == 5
    assert train(Toy(8), _cfg())["stop_reason"] == "budget"


@pytest.mark.parametrize("optim, message", [({"stop_train_error": 1.0}, "stop_train_error"),
                                             ({"plateau": -1}, "plateau")])
def test_bad_stop_settings_are_config_errors(optim, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**optim)


def test_all_finite_is_false_exactly_when_an_entry_is_not_finite():
    from spiking_rhm.training import all_finite

    ok = [torch.full((3, 4), 3e38), torch.zeros(0), torch.ones(2)]
    assert all_finite(ok)
    for bad in (float("nan"), float("inf"), -float("inf")):
        t = torch.ones(3, 4)
        t[2, 1] = bad
        assert not all_finite([*ok, t])


@pytest.mark.parametrize("dtype,weight_decay", [(torch.float32, 0.0), (torch.float32, 0.01), (torch.float64, 0.003)])
def test_momentum_sgd_equals_torch_sgd(dtype, weight_decay):
    """The loop's optimiser step gives torch.optim.SGD's floats exactly: two groups with their own (changing)
    learning rates, a gradient that is None at some steps (skipped, its buffer kept)."""
    from spiking_rhm.training import MomentumSGD

    gen = torch.Generator().manual_seed(0)
    shapes = [(6, 5), (3, 6), (6, 2)]
    mine = [torch.randn(*s, generator=gen, dtype=dtype) for s in shapes]
    ref = [t.clone().requires_grad_(True) for t in mine]
    opt = torch.optim.SGD([{"params": ref[:2], "lr": 0.3}, {"params": ref[2:], "lr": 2.0}], lr=0.3, momentum=0.9,
                          weight_decay=weight_decay)
    sgd = MomentumSGD([mine[:2], mine[2:]], 0.9, weight_decay)
    for step in range(6):
        grads = [torch.randn(*s, generator=gen, dtype=dtype) for s in shapes]
        if step in (2, 3):
            grads[1] = None
        lrs = [0.3 * (1 - step / 10), 2.0 * (1 - step / 10)]
        for p, g in zip(ref, grads):
            p.grad = None if g is None else g.clone()
        for group, lr in zip(opt.param_groups, lrs):
            group["lr"] = lr
        opt.step()
        sgd.step([None if g is None else g.clone() for g in grads], lrs)
        for a, b in zip(mine, ref):
            assert torch.equal(a, b.detach())
