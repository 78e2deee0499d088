# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Adding your own rule
#
# A learning rule in spiking-rhm defines one thing: the **learning signal** `L^l` of every hidden layer, a tensor
# of the shape of the layer's activity `h^l` (`[batch, H, positions]`). Each back end multiplies it by its own
# **eligibility** (the rate network's `rho'(a) x`, the Norse traces) in one place, the plasticity core
# `spiking_rhm.plasticity.weight_gradients`:
#
#     grad W^l = c^l sum_{batch, positions} L^l_j e^l_jk / sqrt(K_l)
#
# so a new rule runs on every training back end without touching them. This tutorial writes a rule, registers it,
# checks that its explicit three-factor update equals the autograd gradient of its local loss, and trains it on
# the rate and the Norse back ends. About a minute on 2 cores.
#
# ## The rule: fixed random local classifiers
#
# Each hidden layer gets its own fixed random linear classifier `M^l` (`[H, n_c]`, standard normal) and learns to
# lower that classifier's cross-entropy, a local error signal in the spirit of Mostafa, Ramesh & Cauwenberghs
# (Front. Neurosci. 2018): no error travels between layers, and the modulator of neuron `j` is its row of `M^l`
# times the layer's own classification error. With the readout's mean-field convention (`y = mean_p(h) beta / H`):
#
#     z^l   = mean_p(h^l) M^l / H                 local logits [B, n_c]
#     ell^l = mean_b CE(z^l_b, y*_b)              local loss
#     L^l   = d ell^l / d h^l = M^l (softmax(z^l) - y*) / (H P_l B)     the same at every position
#
# A rule is a `Rule` subclass with a name, a few declarations, `init_state` for its own parameters and
# `learning_signals`; `local_losses` when it has a genuine local objective. `@register` makes the name known to
# `train`, sweeps and every back end.

# %%
from typing import ClassVar

import torch
import torch.nn.functional as F

from spiking_rhm.rules.base import Rule, available_rules, register


@register
class LocalClassifier(Rule):
    r"""Fixed random local classifier per layer: ``L^l = M^l (softmax(z^l) - y*) / (H P B)``,
    ``z^l = mean_p(h^l) M^l / H`` (the gradient of ``ell^l = mean_b CE(z^l, y*)``)."""

    name = "local-classifier"
    summary = "each layer lowers the cross-entropy of its own fixed random linear classifier (local errors)"
    family = "local-error"
    supervised = True           # hidden layers see the labels ...
    local = True                # ... but no error crosses a layer
    needs = frozenset({"target"})       # the LearningContext fields it reads besides the layers
    default_lr = 1.0            # a first guess (bp's and dfa's); scanned below
    width_scaled_lr = True      # the mean-field convention of bp and dfa: lr x H
    option_defaults: ClassVar[dict] = {}

    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu"):
        return {"M": [torch.randn(H, n_out, generator=generator, dtype=dtype).to(device) for H, _ in layer_shapes]}

    @staticmethod
    def logits(h, M):
        return h.mean(-1) @ M / M.shape[0]

    def learning_signals(self, ctx, state):
        signals = []
        for h, M in zip(ctx.layers, state["M"]):
            B, H, P = h.shape
            error = torch.softmax(self.logits(h.detach(), M), -1) - ctx.target
            signals.append((error @ M.t() / (H * P * B)).unsqueeze(-1).expand(B, H, P))
        return signals

    def local_losses(self, ctx, state):
        return [F.cross_entropy(self.logits(h, M), ctx.target.argmax(1)) for h, M in zip(ctx.layers, state["M"])]


print(sorted(available_rules()))

# %% [markdown]
# Options are checked by the base class: a rule takes only the options in `option_defaults`, and anything else
# is one clear error (`ConfigError`; one line and exit code 2 on the command line).

# %%
from spiking_rhm.errors import ConfigError
from spiking_rhm.rules import get_rule

try:
    get_rule("local-classifier", feedback_shape="shared")
except ConfigError as err:
    print("ConfigError:", err)

# %% [markdown]
# ## The explicit update equals autograd of the local loss
#
# The rate back end forms a rule's update as follows (`rate_models/train.py`): a forward pass whose graph is cut at
# every layer boundary (`forward(..., cut=True)`: each layer's input is detached), a `LearningContext` with the
# fields the rule `needs`, the rate eligibility `RateEligibility(rho'(a), x)` of every layer, and
# `weight_gradients`. Because every layer's input is detached, the autograd gradient of `ell^l` reaches `W^l`
# only, through `h^l`: the two must agree to rounding. Below in float64, on RHM inputs, for the three
# architectures (`cnn`: shared weights, `lcn`: one weight per position, `fcn`: dense).

# %%
from rate_models.networks import forward, init_params, make_spec, relu_derivative
from spiking_rhm import RHM
from spiking_rhm.plasticity import RateEligibility, learning_context, weight_gradients
from spiking_rhm.rhm import onehot

rhm = RHM(v=8, m=4, n_c=8, s=2, L=2, seed=0)
batch, _ = rhm.split(P=32, P_test=0, seed=0)
x = onehot(batch.inputs, rhm.v, dtype=torch.float64)              # [B, v, d]
target = F.one_hot(torch.as_tensor(batch.labels), rhm.n_c).double()
rule = get_rule("local-classifier")

checks = {}
for arch in ("cnn", "lcn", "fcn"):
    spec = make_spec(arch, rhm.v, rhm.d, rhm.s, depth=2, width=32, n_out=rhm.n_c)
    params = init_params(spec, torch.Generator().manual_seed(1), torch.float64)
    for W in params.weights:
        W.requires_grad_(True)
    state = rule.init_state(spec.layer_shapes(), spec.n_out, torch.Generator().manual_seed(2), torch.float64)
    logits, act = forward(params, x, cut=True)
    ctx = learning_context(rule, act.post, logits.detach(), target)
    traces = [RateEligibility(relu_derivative(a.detach()).transpose(1, 2), p.detach())
              for a, p in zip(act.pre, act.patches)]
    update = weight_gradients(rule, ctx, state, traces, [p.shape[-1] for p in act.patches],
                              shared=arch != "lcn", lr=1.0)
    for l, (loss, L, grad, W) in enumerate(zip(rule.local_losses(ctx, state), update.signals, update.grads,
                                                params.weights), 1):
        d_h, d_W = torch.autograd.grad(loss, [ctx.layers[l - 1], W], retain_graph=True)
        checks[arch, l] = (float((L - d_h).norm() / d_h.norm()), float((grad - d_W).norm() / d_W.norm()))
        print(f"{arch} layer {l}: |L - d ell/d h| / |d ell/d h| = {checks[arch, l][0]:.1e}, "
              f"|grad W (L x e) - d ell/d W| / |d ell/d W| = {checks[arch, l][1]:.1e}")
assert max(max(c) for c in checks.values()) < 1e-10

# %% [markdown]
# In the package this check is a test, `tests/rules/test_<family>.py`, with the helpers of
# `tests/rules/rate_helpers.py` (see `test_explicit_update_equals_autograd_of_local_loss` in
# `tests/rules/test_feedback.py`).
#
# ## Training it on the rate and the Norse back ends
#
# Nothing else is needed: `train` finds the rule by name on either back end. A new rule's learning rate is part
# of the rule (`default_lr`, times the width for `width_scaled_lr` rules); the value above is a guess. A short scan
# on the rate back end, 16 epochs of 384 points at a constant learning rate, picks it by the final **training**
# error (the test points stay out of the choice):

# %%
from spiking_rhm.api import train
from spiking_rhm.config import RunConfig

setting = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}


def run(rule_name, backend, lr=None):
    return train(RunConfig.from_dict({
        "rhm": setting, "P": 384, "P_test": 128, "rule": rule_name, "backend": backend, "seed": 0,
        "net": {"width": 64}, "optim": {"epochs": 16, "batch_size": 32, "schedule": "constant", "lr": lr},
    }))


scan = {lr: run("local-classifier", "rate", lr) for lr in (1.0, 4.0, 16.0)}
for lr, r in scan.items():
    print(f"lr {lr:>4} (x H = {lr * 64:g}): train error {r['train_error']:.3f}, {r['status']}")
best_lr = min(scan, key=lambda lr: scan[lr]["train_error"])
print("chosen:", best_lr)

# %% [markdown]
# With that learning rate, the rule on both back ends. On Norse the same `learning_signals` receive the layers'
# spike rates and the target at the end of each presentation, and the update multiplies them by the eligibility
# traces. Beside it, the `random-features` control (hidden layers frozen, scored by a linear probe on the top
# layer), which shows what the readout alone reaches on the same data.

# %%
records = {("local-classifier", "rate"): scan[best_lr],
           ("local-classifier", "norse"): run("local-classifier", "norse", best_lr)}
for backend in ("rate", "norse"):
    records["random-features", backend] = run("random-features", backend)
for (name, backend), r in records.items():
    print(f"{name:>16} [{backend:>5}]: test error {r['test_error']:.3f} ({r['metrics']['evaluation']}), "
          f"train error {r['train_error']:.3f}, {r['wall_time']:.1f} s")

# %%
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4))
for (name, backend), r in records.items():
    curve = r["metrics"]["curve"]
    ax.plot(curve["test_epoch"], curve["test_error"], "o-" if backend == "rate" else "s--",
            color="C0" if name == "local-classifier" else "C3", label=f"{name} [{backend}]")
ax.axhline(1 - 1 / setting["n_c"], color="gray", ls=":", lw=1, label="chance")
ax.set_xlabel("epoch")
ax.set_ylabel("test error (128 points)")
ax.set_title(f"a rule written in this notebook, on (v, m, n_c, s, L) = {tuple(setting.values())}")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# To make the rule part of the package, follow `docs/contributing.md` (Contributing, "A learning rule"): the
# class goes into a module of `spiking_rhm/rules/` (a new module is added to `_load_builtin_rules` in
# `rules/base.py`), the check above into `tests/rules/`, the equation into `docs/rules.md`. It then appears in
# `spiking-rhm rules` and works with `spiking-rhm train --rule local-classifier`, `curve`, the Brian2 mirror (one
# presentation, for cross-checks) and Lava's on-chip learning, which take any rule whose signal lives on the soma
# (Lava: without second views). A rule defined in a notebook, as here, is known only to that Python process:
# sweeps with worker processes and the command line do not see it.
#
# **For real results** compare the rule with `bp`, `dfa` and the control on learning curves over several seeds
# and sizes (the comparing-rules tutorial), at its own tuned learning rate (`optim.lr`), and on a deeper
# setting such as (8, 4, 8, 2, 3), where the layers' local errors differ more from the output error.
#
# ## What you saw

# %%
worst = max(max(c) for c in checks.values())
print(
    f"The rule '{rule.name}', written in this notebook, gave explicit signals and three-factor weight "
    f"updates equal to autograd of its local loss to a relative error of at most {worst:.1e} (float64, cnn, lcn "
    f"and fcn, 2 layers each). Trained for 16 epochs on 384 points of (8, 4, 8, 2, 2) at the learning rate "
    f"{best_lr:g} x H chosen on the training error, it reached test error "
    f"{records['local-classifier', 'rate']['test_error']:.3f} on the rate back end and "
    f"{records['local-classifier', 'norse']['test_error']:.3f} on Norse, against "
    f"{records['random-features', 'rate']['test_error']:.3f} and "
    f"{records['random-features', 'norse']['test_error']:.3f} "
    f"for the random-features control (chance {1 - 1 / setting['n_c']:.3f}, 128 test points, seed 0)."
)
