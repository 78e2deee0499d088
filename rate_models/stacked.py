r"""Stacked runs: several rate runs of one rule and setting, trained together as one batched model.

Runs that differ only in their seed or learning rate (:data:`FREE_KEYS`) have the same shapes, so ``R`` of
them train as one model with a leading run axis: every tensor of a run (weights, biases, readout, momentum
buffers, rule state, training and test data) is stacked to ``[R, ...]`` and one step's matmuls are batched
ones::

    rules with a gradient signal (bp):   grads_r = dLoss_r/dtheta_r, backprop written out with batched matmuls
                                         (rate_models.networks.batched_gradients)
    every other rule:                    grads_r = vmap(three-factor step)(theta_r, state_r, x_r, y_r, lr_r)
    SGD (momentum, weight decay):        theta_r <- theta_r - lr_r s(step) buf_r    (per-run lr, in place)

Each run keeps what it has alone: its :class:`~rate_models.train.RateBackend` (data split, initialisation,
rule state, resampling generator) is built exactly as for a lone run, its data order comes from its own
generator, its :class:`~spiking_rhm.epochs.EpochLog` decides its divergence and early stop, and at its
alignment steps the run takes its lone step (the generic path with BP's cosine). A run that stops
(converged, diverged or done) is copied back into its back end, scored and recorded by the same code as a
lone run (:func:`spiking_rhm.training.run_record`), and removed from the stack; the others go on.

The records equal the lone runs' to float tolerance (batched matmuls sum in another order); a rule whose
step cannot be vmapped (it needs autograd inside the step, e.g. ``bp-unmasked``'s ``layer_vjp``) is not
stackable (:func:`stackable`) and trains alone.
"""

from __future__ import annotations

import json
import math
import time
from functools import partial
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.func import vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from rate_models.networks import (NetParams, Workspace, batched_forward, batched_gradients, branch_inputs,
                                  explicit_bias_update, forward)
from rate_models.train import EVAL_CHUNK, RateBackend, build_rule, rate_update
from spiking_rhm import training
from spiking_rhm.epochs import EpochLog
from spiking_rhm.errors import ConfigError
from spiking_rhm.memory import PeakMemory
from spiking_rhm.plasticity import learning_context
from spiking_rhm.rhm import onehot

Tensor = torch.Tensor
# what may differ between the runs of one stack (dotted paths of RunConfig.to_dict())
FREE_KEYS = ("seed", "optim.lr")
# runs per stack in a sweep when none is asked for: 1 (opt-in).  Measured (docs/performance.md): the claim-2 sweep
# takes the same CPU time stacked, and its chaotic default-lr runs end elsewhere when float rounding changes
DEFAULT_STACK = 1


class NotStackable(ConfigError):
    """These runs cannot be trained as one stack (the message says why); train them alone."""


def stack_key(cfg) -> str:
    """Runs with equal keys can be stacked: the config without :data:`FREE_KEYS`."""
    data = cfg.to_dict()
    for path in FREE_KEYS:
        *head, last = path.split(".")
        node = data
        for part in head:
            node = node[part]
        node.pop(last, None)
    return json.dumps(data, sort_keys=True)


def stackable(cfg) -> str | None:
    """None when ``cfg`` can be trained in a stack, else the reason it cannot."""
    if cfg.backend != "rate":
        return f"back end {cfg.backend!r} (only the rate back end stacks runs)"
    o = cfg.optim
    unsupported = [name for name, used in (("optim.validation", o.validation > 0), ("optim.warmup", bool(o.warmup)),
                                           ("optim.clip", o.clip is not None), ("optim.plateau", bool(o.plateau)),
                                           ("optim.stop_train_error", o.stop_train_error is not None),
                                           ("grid", bool(cfg.grid))) if used]
    if unsupported:  # the stacked loop has none of these (yet): such runs train alone
        return f"{', '.join(unsupported)} (the stacked loop does not implement them)"
    rule, _backend = build_rule(cfg)
    if rule.capabilities.non_local and not rule.gradient_signal:
        return (f"rule {rule.name!r} needs {', '.join(rule.capabilities.non_local)} (autograd inside the step, "
                f"which vmap does not batch)")
    return None


def group(cfgs: Sequence, limit: int) -> list[list]:
    """``cfgs`` in groups of at most ``limit`` stackable runs with equal :func:`stack_key` (first-seen order;
    a key's runs are split into near-equal groups); runs that cannot be stacked are groups of one."""
    if limit < 1:
        raise ConfigError(f"stack must be >= 1, got {limit}")
    by_key: dict[str, list] = {}
    for cfg in cfgs:
        key = stack_key(cfg) if limit > 1 and stackable(cfg) is None else f"alone:{cfg.run_id()}"
        by_key.setdefault(key, []).append(cfg)
    groups = []
    for members in by_key.values():
        n = -(-len(members) // limit)
        size = -(-len(members) // n)
        groups.extend(members[i:i + size] for i in range(0, len(members), size))
    return groups


# --------------------------------------------------------------------------- pytree helpers
def _split(tree) -> tuple[list[Tensor], tuple]:
    """A rule state as (its tensor leaves, its structure: treedef, all leaves, tensor positions)."""
    leaves, spec = tree_flatten(tree)
    where = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tensor)]
    return [leaves[i] for i in where], (spec, leaves, where)


def _stack_trees(trees: Sequence[Any]) -> tuple[list[Tensor], tuple]:
    """(stacked tensor leaves, structure) of the runs' rule states; their non-tensor leaves (shapes, counters
    that do not depend on the data) must be equal."""
    split = [_split(t) for t in trees]
    _t0, (spec, leaves0, where) = split[0]
    for _t, (other, leaves, w) in split[1:]:
        if other != spec or w != where or any(leaves[i] != leaves0[i] for i in range(len(leaves0)) if i not in where):
            raise NotStackable("the runs' rule states differ in structure")
    return [torch.stack([t[i] for t, _ in split]) for i in range(len(where))], split[0][1]


def _rebuild(tensors: Sequence[Tensor], structure: tuple):
    spec, leaves0, where = structure
    leaves = list(leaves0)
    for i, t in zip(where, tensors):
        leaves[i] = t
    return tree_unflatten(leaves, spec)


class _Stack:
    """The stacked tensors of the active runs and the per-run bookkeeping, compacted as runs stop."""

    def __init__(self, backends: list[RateBackend]):
        b0 = backends[0]
        self.backends = backends
        self.spec, self.rule, self.which = b0.spec, b0.rule, b0.head.which
        self.bias_at = [b is not None for b in b0.params.biases]
        self.weights = [torch.stack([b.params.weights[l].detach() for b in backends]) for l in range(b0.spec.depth)]
        self.biases = [torch.stack([b.params.biases[l].detach() for b in backends])
                       for l, has in enumerate(self.bias_at) if has]
        self.beta = torch.stack([b.head.beta.detach() for b in backends])
        self.net_readout = torch.stack([b.params.readout.detach() for b in backends])
        self.state, self.structure = _stack_trees([b.state for b in backends])
        self.X, self.Y = torch.stack([b.X for b in backends]), torch.stack([b.Y for b in backends])
        self.X_test = torch.stack([b.X_test for b in backends])
        self.Y_test = torch.stack([b.Y_test for b in backends])
        lrs = torch.tensor([b.learning_rates() for b in backends], dtype=torch.float64)
        self.lr_hidden, self.lr_readout = lrs[:, 0], lrs[:, 1]
        self.bufs: list[Tensor] | None = None
        self.work = Workspace()  # the batched step's and test error's output buffers (new shapes when runs stop)

    # -- the stacked tensors ------------------------------------------------
    def trainables(self) -> list[Tensor]:
        return [*self.weights, *self.biases, self.beta]

    def set_trainables(self, tensors: Sequence[Tensor]) -> None:
        n_w, n_b = len(self.weights), len(self.biases)
        self.weights, self.biases, self.beta = list(tensors[:n_w]), list(tensors[n_w:n_w + n_b]), tensors[-1]

    def keep(self, rows: list[int]) -> None:
        """Keep only the runs at ``rows`` (0-based positions in the stack)."""
        idx = torch.tensor(rows, dtype=torch.long)
        take = (lambda t: t[idx])
        self.set_trainables([take(t) for t in self.trainables()])
        self.net_readout, self.state = take(self.net_readout), [take(t) for t in self.state]
        self.X, self.Y, self.X_test, self.Y_test = take(self.X), take(self.Y), take(self.X_test), take(self.Y_test)
        self.lr_hidden, self.lr_readout = take(self.lr_hidden), take(self.lr_readout)
        self.bufs = None if self.bufs is None else [take(t) for t in self.bufs]
        self.backends = [self.backends[i] for i in rows]
        self.work = Workspace()

    def params(self, weights, biases, beta, net_readout) -> NetParams:
        """One run's :class:`NetParams` from its slices (inside vmap); the network's readout is ``beta`` for
        ``readout = top`` and the frozen ``net_readout`` for ``readout = all``."""
        it = iter(biases)
        return NetParams(self.spec, tuple(weights), tuple(next(it) if has else None for has in self.bias_at),
                         beta if self.which == "top" else net_readout)

    def unstack_state(self, r: int):
        return _rebuild([t[r] for t in self.state], self.structure)

    def load(self, r: int) -> None:
        """Copy run ``r``'s slices into its own back end (for its lone steps and its final scores)."""
        b = self.backends[r]
        with torch.no_grad():
            for mine, t in zip(b.trainable()[0], [*self.weights, *self.biases]):
                mine.copy_(t[r])
            b.head.beta.copy_(self.beta[r])
        b.state = self.unstack_state(r)

    # -- every run at once, batched matmuls (no vmap) --------------------------
    def stacked_forward(self, trainables: Sequence[Tensor], x: Tensor) -> tuple[Tensor, list]:
        """:func:`rate_models.networks.batched_forward` of the stacked tensors."""
        return batched_forward(self.spec, trainables, x, self.work)

    def stacked_gradients(self, trainables: Sequence[Tensor], x: Tensor, y: Tensor
                          ) -> tuple[list[Tensor], Tensor, Tensor]:
        """:func:`rate_models.networks.batched_gradients` of the stacked tensors."""
        return batched_gradients(self.spec, trainables, x, y, self.work)

    # -- one run's functions (vmapped) ---------------------------------------
    def logits(self, weights, biases, beta, net_readout, x):
        out, act = forward(self.params(weights, biases, beta, net_readout), x)
        if self.which == "top":
            return out, act
        feats = torch.cat([h.mean(-1) for h in act.post], 1)
        return feats @ beta / beta.shape[0], act

    def three_factor(self, weights, biases, beta, net_readout, state, x, y, target, positive, lr):
        """The lone run's generic step (``RateBackend.step`` without alignment) on one run's slices."""
        params = self.params(weights, biases, beta, net_readout)
        logits, act = self.logits(weights, biases, beta, net_readout, x)
        spec, rule = self.spec, self.rule
        ctx = learning_context(rule, act.post, logits, target, pre_activations=act.pre,
                               weights=lambda: params.weights, branch_inputs=lambda: branch_inputs(act, spec))
        if positive:
            ctx.positive = list(positive)
        state = _rebuild(state, self.structure)
        signals, grads, new_state = rate_update(rule, ctx, state, act, params, lr)
        new_leaves, self.new_structure = _split(new_state)  # its non-tensor leaves do not depend on the run
        bias_grads = [-explicit_bias_update(sig, act, l) for l, (has, sig) in enumerate(zip(self.bias_at, signals), 1)
                      if has]
        feats = act.post[-1].mean(-1) if self.which == "top" else torch.cat([h.mean(-1) for h in act.post], 1)
        err = torch.softmax(logits, -1) - target  # d CE / d logits x B
        grad_beta = feats.t() @ err / (x.shape[0] * beta.shape[0])
        loss = F.cross_entropy(logits, y)
        return [*grads, *bias_grads, grad_beta], loss, (logits.argmax(1) != y).sum(), new_leaves


def _finite_rows(tensors: Sequence[Tensor]) -> Tensor:
    """``[R]`` bool: every entry of run ``r``'s slices is finite (its least and largest entries are finite iff all
    are: ``aminmax`` propagates NaN; one reduction, no temporary, ~10x faster than ``isfinite(t).all``)."""
    ok = None
    for t in tensors:
        least, most = torch.aminmax(t.reshape(t.shape[0], -1), dim=1)
        rows = torch.isfinite(least) & torch.isfinite(most)
        ok = rows if ok is None else ok & rows
    return ok


def _sgd(stack: _Stack, grads: Sequence[Tensor], scale: float, momentum: float, weight_decay: float) -> None:
    """``torch.optim.SGD``'s update (momentum, weight decay, no dampening) with a learning rate per run, in place
    (the stacked tensors are leaves of no graph: the gradient step detaches them)."""
    params = stack.trainables()
    n = len(params)
    first = stack.bufs is None
    grads = [g.add(p, alpha=weight_decay) for p, g in zip(params, grads)] if weight_decay != 0 else list(grads)
    if momentum != 0:
        if first:
            stack.bufs = [g.clone() for g in grads]
        else:  # buf <- g + momentum buf in one pass, written into the step's own gradient tensors, which become
            # the buffers (the workspace gets the old buffers in their place)
            grads = [g if g._base is None and g.is_contiguous() else g.clone() for g in grads]
            torch._foreach_add_(grads, stack.bufs, alpha=momentum)
            stack.work.swap(grads, stack.bufs)
            stack.bufs = grads
        grads = stack.bufs
    for lrs, ps, ds in ((stack.lr_hidden, params[:n - 1], grads[:n - 1]), (stack.lr_readout, params[-1:], grads[-1:])):
        if not ps:
            continue
        if bool((lrs == lrs[0]).all()):  # one learning rate (runs differing in seed only): one fused pass
            torch._foreach_add_(ps, ds, alpha=-float(lrs[0]) * scale)
            continue
        for p, d in zip(ps, ds):
            p.addcmul_(d, (lrs * scale).to(p.dtype).reshape(-1, *([1] * (p.dim() - 1))), value=-1.0)


def _check(cfgs: Sequence) -> None:
    if len(cfgs) < 1:
        raise ConfigError("a stack needs at least one run")
    keys = {stack_key(cfg) for cfg in cfgs}
    if len(keys) > 1:
        raise NotStackable(f"the runs differ in more than {', '.join(FREE_KEYS)}")
    reason = stackable(cfgs[0])
    if reason is not None:
        raise NotStackable(reason)


def train_stack(cfgs: Sequence, progress: bool = False) -> list[dict]:
    """Train ``cfgs`` (equal :func:`stack_key`) as one stack; the metrics dict of each, in order.

    Each dict is what :func:`rate_models.train.train_rate` returns for that run alone (to float tolerance),
    plus ``stack`` = ``{"size", "index", "wall_time"}`` (``wall_time``: the whole stack's; the run's own
    ``wall_time`` is its share, the stack's time over its size) and ``memory``: the process's peak resident
    memory while the whole stack trained (:class:`spiking_rhm.memory.PeakMemory`; ``stack_size`` runs share
    it). Raises :class:`NotStackable` when the runs cannot be stacked (before any training).
    """
    with PeakMemory() as memory:
        results = _train_stack(cfgs, progress)
    for metrics in results:
        metrics["memory"] = {**memory.fields, "stack_size": len(results)}
    return results


def _train_stack(cfgs: Sequence, progress: bool = False) -> list[dict]:
    """:func:`train_stack` without the memory measurement."""
    start = time.perf_counter()
    cfgs = list(cfgs)
    _check(cfgs)
    cfg0 = cfgs[0]
    backends = [RateBackend(cfg) for cfg in cfgs]
    P, _P_test = cfg0.sizes()
    stack = _Stack(backends)
    rule = stack.rule
    plan = training.plan(cfg0, P, backends[0].n_alignment_points)
    optim = cfg0.optim
    gens = [torch.Generator().manual_seed(cfg.seed + 7919) for cfg in cfgs]
    logs = [EpochLog(plan.n_epochs, optim.stop_train_loss, False) for _ in cfgs]
    active = list(range(len(cfgs)))  # run index of each stack row
    alignment: list[list] = [[] for _ in cfgs]
    n_generated = [0] * len(cfgs)
    seen_total = [0] * len(cfgs)
    results: list[dict | None] = [None] * len(cfgs)
    n_trainable = len(stack.trainables())

    three_factor = vmap(stack.three_factor)
    evaluate = vmap(lambda w, b, beta, ro, x: stack.logits(w, b, beta, ro, x)[0])
    views = vmap(lambda w, b, beta, ro, x: forward(stack.params(w, b, beta, ro), x)[1].post)

    def lone_step(idx: Tensor, scale: float, align: bool) -> tuple[list[Tensor], Tensor, Tensor]:
        """Every active run's own RateBackend.step (alignment steps), stacked back."""
        outs = []
        for row, r in enumerate(active):
            stack.load(row)
            b = stack.backends[row]
            out = b.step(idx[row], float(stack.lr_hidden[row]) * scale, align)
            n_generated[r] += out.generated
            if out.cosine is not None:
                alignment[r].append(training.alignment_snapshot(step, epoch, out))
            outs.append(out)
        stack.state, stack.structure = _stack_trees([b.state for b in stack.backends])
        grads = [torch.stack([o.grads[i].detach() for o in outs]) for i in range(n_trainable)]
        return grads, torch.stack([torch.as_tensor(o.loss) for o in outs]), torch.stack(
            [torch.as_tensor(o.wrong) for o in outs])

    def stacked_step(idx: Tensor, scale: float) -> tuple[list[Tensor], Tensor, Tensor]:
        rows = torch.arange(idx.shape[0])[:, None]
        xb, yb = stack.X[rows, idx], stack.Y[rows, idx]
        if rule.gradient_signal and stack.which == "top":
            return stack.stacked_gradients(stack.trainables(), xb, yb)
        positive = []
        if stack.backends[0].levels:
            positive = _positive_views(stack, idx, views, n_generated, active)
        target = F.one_hot(yb, stack.spec.n_out).to(xb.dtype)
        lr = (stack.lr_hidden * scale).to(xb.dtype)
        with torch.no_grad():
            grads, loss, wrong, state = three_factor(stack.weights, stack.biases, stack.beta, stack.net_readout,
                                                     stack.state, xb, yb, target, positive, lr)
        stack.state, stack.structure = list(state), stack.new_structure
        return list(grads), loss, wrong

    def test_errors() -> list[float]:
        wrong = torch.zeros(len(active), dtype=torch.long)
        n = stack.X_test.shape[1]
        with torch.no_grad():
            for i in range(0, n, EVAL_CHUNK):
                x = stack.X_test[:, i:i + EVAL_CHUNK]
                logits = (stack.stacked_forward(stack.trainables(), x)[0] if stack.which == "top" else
                          evaluate(stack.weights, stack.biases, stack.beta, stack.net_readout, x))
                wrong += (logits.argmax(-1) != stack.Y_test[:, i:i + EVAL_CHUNK]).sum(1)
        return [int(w) / n if n else float("nan") for w in wrong]

    def finish(row: int, r: int, end: float) -> None:
        stack.load(row)
        metrics = training.run_record(stack.backends[row], cfgs[r], logs[r], alignment[r], n_generated[r], step,
                                      seen_total[r], tuple(map(float, stack.backends[row].learning_rates())), end)
        results[r] = metrics

    step = 0
    batch, spe = plan.batch, plan.steps_per_epoch
    epoch = 0
    for epoch in range(1, plan.n_epochs + 1):
        perm = torch.stack([torch.randperm(P, generator=gens[r]) for r in active])
        loss_sum = torch.zeros(len(active), dtype=torch.float64)
        wrong_sum = torch.zeros(len(active), dtype=torch.long)
        seen = 0
        for k in range(spe):
            idx = perm[:, k * batch:(k + 1) * batch]
            scale = training.cosine_factor(step, plan.total_steps, optim.schedule)
            if step in plan.align_at:
                grads, loss, wrong = lone_step(idx, scale, step in plan.align_at)
            else:
                try:
                    grads, loss, wrong = stacked_step(idx, scale)
                except NotStackable:
                    raise
                except Exception as err:  # noqa: BLE001 - a rule vmap cannot batch: train alone
                    if step == 0:
                        raise NotStackable(f"rule {rule.name!r} does not batch under vmap: "
                                           f"{type(err).__name__}: {err}") from err
                    raise
            _sgd(stack, grads, scale, optim.momentum, optim.weight_decay)
            loss_sum += loss.detach().double() * idx.shape[1]
            wrong_sum += wrong.long()
            seen += idx.shape[1]
            step += 1
        finite = [_finite_rows(stack.trainables())]
        cached: list[list[float]] = []

        def test_error(row: int) -> float:
            if not cached:
                cached.append(test_errors())
            return cached[0][row]

        stopped = []
        for row, r in enumerate(active):
            seen_total[r] += seen
            if logs[r].end_epoch(epoch, float(loss_sum[row]) / seen, int(wrong_sum[row]) / seen,
                                 params_finite=partial(lambda row: bool(finite[0][row]), row),
                                 test_error=partial(test_error, row)):
                stopped.append(row)
        if stopped:
            for row in stopped:
                logs[active[row]].close()
            for row in stopped:
                finish(row, active[row], start)
            rows = [row for row in range(len(active)) if row not in stopped]
            active = [active[row] for row in rows]
            if not active:
                break
            stack.keep(rows)
    for r in active:
        logs[r].close()
    for row, r in enumerate(active):
        finish(row, r, start)
    wall = time.perf_counter() - start
    for i, metrics in enumerate(results):
        metrics["wall_time"] = wall / len(cfgs)
        metrics["stack"] = {"size": len(cfgs), "index": i, "wall_time": wall}
    return results


def _positive_views(stack: _Stack, idx: Tensor, views, n_generated: list[int], active: list[int]) -> list[Tensor]:
    """Every run's positive views (its own resampling generator, as alone), their layers' activity stacked."""
    b0 = stack.backends[0]
    by_level = {}
    for level in b0.distinct_levels:
        xs = []
        for row, b in enumerate(stack.backends):
            sub = b.train.take(idx[row].cpu().numpy())
            xs.append(b.rhm.resample(sub, level, b.view_rng).inputs)
        x = torch.stack([onehot(xi, b0.rhm.v, dtype=b0.dtype, device=b0.device) for xi in xs])
        with torch.no_grad():
            by_level[level] = views(stack.weights, stack.biases, stack.beta, stack.net_readout, x)
    for r in active:
        n_generated[r] += len(b0.distinct_levels) * idx.shape[1]
    return [by_level[level][l] for l, level in enumerate(b0.levels)]


__all__ = ["DEFAULT_STACK", "FREE_KEYS", "NotStackable", "group", "stack_key", "stackable", "train_stack"]
