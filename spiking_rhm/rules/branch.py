r"""Branch-local rules: the learning signal lives on a neuron's dendritic branches, one per input tap.

In the hierarchical networks (filter = stride = s) the pre-activation of unit ``j`` of layer ``l``
at position ``p`` is a sum over its ``s`` input taps (the sibling positions of layer ``l-1``)::

    a^l_jp = sum_k z^l_jkp ,     z^l_jkp = sum_i W^l_{j,(k,i)} x^l_{ikp} / sqrt(fan_in)

``x^l_{:,k,p}`` is the activity of layer ``l-1`` at tap ``k`` of patch ``p`` (the rate back end's
``h^{l-1}``, the spiking back end's pre-synaptic rates).  A branch rule's learning signal
``L^l = d ell^l / d z^l`` has the layout of ``z^l``, ``[B, H, s, P_l]``, and its eligibility is the
pre-synaptic factor alone, seen through an optional per-tap decorrelating transform ``Q^l_k``
(a lateral whitening circuit on the pre-synaptic side, learned from the tap's own input)::

    Delta W^l_{j,(k,:)} = -eta sum_{b,p} L^l_{bjkp} (Q^l_k x^l_{:,k,p}) / sqrt(fan_in)

With ``Q = I`` this is exactly ``-eta d ell^l / d W^l`` (tests compare it with autograd); with a
learned ``Q`` it is that gradient times ``Q`` on the pre-synaptic side (a preconditioned, still
local, update).

``sibling-cca`` (docs/rules_selfsupervised.md, docs/results_ssl_research.md 2.6): the taps of a
patch are siblings in the RHM tree, drawn independently given their parent, so what tap ``k``
shares with the other taps is its own (level l-1) symbol.  Each branch is projected by a fixed
random map ``R^l_k`` (``[K, H]``, orthonormal rows) and the projections of the taps are made to
agree by the spectral (CCA-type) objective, sites ``n`` = samples x positions, centred over the
sites::

    y_k = R_k z_k ,   C_kk' = mean_n ytilde_k ytilde_k'^T
    ell^l = sum_{k<k'} [ -2 tr C_kk' + tr(C_kk C_k'k') ] + lam sum_k mean_n |ztilde_k|^2
            + (mu / 2) sum_j (mean_n a_j)^2                      (a = sum_k z_k: homeostasis of the soma)
    L_k   = ( sum_{k' != k} [ -2 ytilde_k' + 2 ytilde_k C_k'k' ] R_k + 2 lam ztilde_k + mu mean_n a ) / n

Its minimiser in whitened coordinates is the rank-K canonical-correlation solution with every
canonical correlation soft-thresholded, ``(rho - lam)_+`` (the activity penalty decays whatever
the siblings do not share), mixed into the H units independently per tap by ``R_k^T``.
Because the objective lives in whitened coordinates, plain SGD on ``W`` converges at the rate of
the smallest input variance; ``Q^l_k = m (C_x + eps m I)^{-1}`` (``C_x`` an exponential running
estimate of the tap input covariance, ``m = tr C_x / dim``) removes that ill-conditioning.
The small homeostatic term (``center``) keeps each unit's mean pre-activation near 0, i.e. its
ReLU threshold at the mean of its drive (the batch prototype standardised every layer).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.network import branch_pre_activations, taps_of  # the tap layout (re-exported)
from spiking_rhm.rules.base import LearningContext, Rule, SignalSite, field_by_name, register

Tensor = torch.Tensor
PRIOR_BATCHES = 4  # weight of the isotropic prior m I of the running covariance, in batches (Q starts near I)


class BranchState(NamedTuple):
    """Layer shapes ``(H_l, P_l)``, taps ``s``, fixed projections ``R^l_k`` ``[K, H]`` per layer and tap, and the
    running tap-input covariances ``[s, C, C]`` (``None`` until the first update) with their EMA masses."""

    layer_shapes: list[tuple[int, int]]
    taps: int
    projections: list[list[Tensor]]
    cov: list[Tensor | None]
    cov_mass: list[float]
    __getitem__ = field_by_name


class BranchRule(Rule):
    """Base of the branch-local rules: signals ``[B, H, s, P_l]`` on ``ctx.branches``."""

    signal_site = SignalSite.BRANCH
    needs = frozenset({"branches"})
    dendritic_signal = True  # per-tap targets: they live on the dendritic branches

    def trained_layers(self, L: int) -> list[int]:
        """1-based layers that receive a learning signal (the others keep their initial weights)."""
        return list(range(1, L + 1))

    def presynaptic_transforms(self, state: BranchState) -> list[list[Tensor] | None]:
        """Per layer, ``Q^l_k`` for every tap (``[C, C]``), or ``None`` for the identity."""
        return [None] * len(state.layer_shapes)


def branch_weight_gradient(signal: Tensor, tap_inputs: Tensor, transforms: Sequence[Tensor] | None,
                           shared: bool) -> Tensor:
    r"""``sum_{b,p} L_{bjkp} (Q_k x_{:,k,p})_i / sqrt(fan_in)`` in the weight layout.

    ``signal``: ``[B, H, s, P]``; ``tap_inputs``: ``[B, C, s, P]``; ``shared`` (CNN): ``[H, s*C]``,
    else (LCN) ``[P, H, s*C]``.  The caller multiplies by ``-eta``.
    """
    B, C, s, P = tap_inputs.shape
    g = torch.einsum("bhkp,bckp->hkc" if shared else "bhkp,bckp->phkc", signal, tap_inputs)
    g = g.reshape(*g.shape[:-2], s * C) / math.sqrt(s * C)
    return g if transforms is None else precondition_(g, transforms, s)  # sum L (Q x) = (sum L x) Q, Q symmetric


def branch_step(rule: BranchRule, state: BranchState, ctx: LearningContext, tap_inputs: Sequence[Tensor],
                weights: Sequence[Tensor], shared: bool) -> tuple[list[Tensor], list[Tensor]]:
    """The spiking back ends' branch update: fill ``ctx.branch_inputs`` and ``ctx.branches`` from the tap
    inputs ``x^l`` and the weights, and return ``(L^l, grad W^l)`` (explicit, through the rule's ``Q``)."""
    ctx.branch_inputs = list(tap_inputs)
    ctx.branches = [branch_pre_activations(x, W, shared) for x, W in zip(tap_inputs, weights)]
    signals = rule.learning_signals(ctx, state)
    transforms = rule.presynaptic_transforms(state)
    return signals, [branch_weight_gradient(L, x, Q, shared) for L, x, Q in zip(signals, tap_inputs, transforms)]


def precondition_(grad: Tensor, transforms: Sequence[Tensor], s: int) -> Tensor:
    """In place: ``grad[..., (k, :)] <- grad[..., (k, :)] Q_k`` (weight layout ``[..., s*C]``)."""
    C = grad.shape[-1] // s
    view = grad.view(*grad.shape[:-1], s, C)
    for k, Q in enumerate(transforms):
        view[..., k, :] = view[..., k, :] @ Q
    return grad


def _centred(x: Tensor) -> Tensor:
    return x - x.mean(0, keepdim=True)


@register
class SiblingCCA(BranchRule):
    name = "sibling-cca"
    summary = "each tap branch learns what it shares with its sibling taps (spectral CCA, branch-local)"
    family = "self-supervised"
    supervised = False
    local = True
    # chosen on (8,4,8,2,3), P = 1024, seed 0 only (H = 128, 30 epochs, batch 32; docs/results_ssl_research.md 2.6):
    # lr 30 / 100 / 300 -> 0.37 / 0.24 / diverged; shrink 0.1 / 0.15 / 0.2 / 0.25 / 0.35 -> 0.60 / 0.32 / 0.20 / 0.24 /
    # 0.43; center 0 / 0.003 / 0.01 / 0.03 / 0.1 -> 0.196 / 0.131 / 0.134 / 0.146 / 0.167 (1 diverged)
    default_lr = 100.0
    option_defaults = {
        "dim": 16,  # K: dimension of each branch's random projection
        "shrink": 0.2,  # lam: activity penalty = soft threshold on the canonical correlations
        "whiten": 0.1,  # eps of Q = m (C_x + eps m I)^{-1}; None: no pre-synaptic transform (Q = I)
        "cov_decay": 0.99,  # running covariance: EMA of the batch covariances (bias-corrected, isotropic prior)
        "first_layer": False,  # train layer 1 too (its taps are single input symbols)
        "center": 0.01,  # mu: homeostatic term (mu / 2) sum_j (mean_sites a_j)^2 (ReLU threshold at the mean)
    }

    def __init__(self, **options: Any):
        super().__init__(**options)
        o = self.options
        if isinstance(o["dim"], bool) or not isinstance(o["dim"], int) or o["dim"] < 1:
            raise ConfigError(f"dim must be a positive integer, got {o['dim']!r}")
        if not (isinstance(o["shrink"], (int, float)) and o["shrink"] >= 0):
            raise ConfigError(f"shrink must be a number >= 0, got {o['shrink']!r}")
        if o["whiten"] is not None and not (isinstance(o["whiten"], (int, float)) and o["whiten"] > 0):
            raise ConfigError(f"whiten must be None or a number > 0, got {o['whiten']!r}")
        if not (isinstance(o["cov_decay"], (int, float)) and 0 <= o["cov_decay"] < 1):
            raise ConfigError(f"cov_decay must be in [0, 1), got {o['cov_decay']!r}")
        if not (isinstance(o["center"], (int, float)) and o["center"] >= 0):
            raise ConfigError(f"center must be a number >= 0, got {o['center']!r}")
        if not isinstance(o["first_layer"], bool):
            raise ConfigError(f"first_layer must be true or false, got {o['first_layer']!r}")

    def trained_layers(self, L: int) -> list[int]:
        return list(range(1 if self.options["first_layer"] else 2, L + 1))

    def data_use(self, L: int) -> dict:
        return {"pairs": "sibling taps (same input)", "scoring": "branch", "uses_grammar": False,
                "positive_view_levels": None, "label_information": False}

    # -- state -----------------------------------------------------------------------------
    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu", taps: int = 2
                   ) -> BranchState:
        """Projections ``R^l_k`` and (lazily filled) running covariances.

        ``taps`` (s) comes from the back end; the covariances are created at the first :meth:`update_state`.
        """
        shapes = [tuple(int(x) for x in sh) for sh in layer_shapes]
        if not shapes:
            raise ConfigError(f"rule {self.name!r} needs at least one hidden layer")
        if taps < 2:
            raise ConfigError(f"rule {self.name!r} learns on the input taps of each unit: it needs >= 2 taps per "
                              f"patch (arch = cnn or lcn with s >= 2), got {taps}")
        K = self.options["dim"]
        projections = []
        for H, _ in shapes:
            if K > H:
                raise ConfigError(f"{self.name}: dim = {K} is larger than the layer width {H}")
            per_tap = []
            for _ in range(taps):
                q, _r = torch.linalg.qr(torch.randn(H, K, generator=generator, dtype=torch.float64))
                per_tap.append(q.T.contiguous().to(dtype=dtype, device=device))  # [K, H], orthonormal rows
            projections.append(per_tap)
        return BranchState(shapes, taps, projections, [None] * len(shapes), [0.0] * len(shapes))

    # -- the objective -------------------------------------------------------------------
    def _check(self, ctx: LearningContext, state: BranchState) -> None:
        if ctx.branches is None:
            raise ConfigError(f"rule {self.name!r} needs the branch pre-activations (ctx.branches); this back end "
                              "or architecture does not provide them (use arch = cnn or lcn)")
        shapes = state.layer_shapes
        if len(ctx.branches) != len(shapes):
            raise ConfigError(f"rule {self.name!r}: state is for {len(shapes)} layers, context has "
                              f"{len(ctx.branches)}")
        for l, (z, (H, P)) in enumerate(zip(ctx.branches, shapes), 1):
            if z.dim() != 4 or tuple(z.shape[1:]) != (H, state.taps, P):
                raise ConfigError(f"rule {self.name!r}: layer {l} branches have shape {tuple(z.shape)}, expected "
                                  f"[B, {H}, {state.taps}, {P}]")
            if z.shape[0] * P < 2:
                raise ConfigError(f"rule {self.name!r} needs >= 2 sites (samples x positions) per layer")

    @staticmethod
    def _sites(z: Tensor) -> Tensor:
        """``[B, H, s, P] -> [s, B*P, H]``."""
        B, H, s, P = z.shape
        return z.permute(2, 0, 3, 1).reshape(s, B * P, H)

    def _projections(self, z: Tensor, R: Sequence[Tensor]):
        """Sites ``Z [s, n, H]``, centred branches ``Zc_k``, projections ``Y_k = Zc_k R_k^T`` and ``C_kk``."""
        Z = self._sites(z)
        n = Z.shape[1]
        Zc = [_centred(Z[k]) for k in range(Z.shape[0])]
        Y = [zc @ R[k].T for k, zc in enumerate(Zc)]
        return Z, Zc, Y, [y.T @ y / n for y in Y], n

    def _layer_loss(self, z: Tensor, R: Sequence[Tensor]) -> Tensor:
        Z, Zc, Y, auto, n = self._projections(z, R)
        s = Z.shape[0]
        loss = 0.0
        for k in range(s):
            for k2 in range(k + 1, s):
                loss = loss - 2 * (Y[k] * Y[k2]).sum() / n + (auto[k] * auto[k2]).sum()
        lam, mu = float(self.options["shrink"]), float(self.options["center"])
        return loss + lam * sum((zc * zc).sum() for zc in Zc) / n + mu / 2 * (Z.sum(0).mean(0) ** 2).sum()

    def _layer_signal(self, z: Tensor, R: Sequence[Tensor]) -> Tensor:
        Z, Zc, Y, auto, n = self._projections(z, R)
        return self._signal(z.shape, Zc, Y, auto, Z.sum(0).mean(0, keepdim=True), R)

    def _signal(self, shape, Zc: Sequence[Tensor], Y: Sequence[Tensor], auto: Sequence[Tensor], soma_mean: Tensor,
                R: Sequence[Tensor]) -> Tensor:
        """``L_k`` from centred branches ``Zc_k [n, H]``, projections ``Y_k``, auto-covariances ``C_kk`` and the
        soma's mean ``[1, H]`` (mean_sites a_j, without bias), laid out ``shape = [B, H, s, P]``."""
        B, H, s, P = shape
        n = Zc[0].shape[0]
        lam, mu = float(self.options["shrink"]), float(self.options["center"])
        grads = []
        for k in range(s):
            dY = sum(-2 * Y[k2] + 2 * Y[k] @ auto[k2] for k2 in range(s) if k2 != k)
            # already centred: the centring's adjoint is itself; the homeostatic term is the same at every site
            grads.append((dY @ R[k] + 2 * lam * Zc[k] + mu * soma_mean) / n)
        return torch.stack(grads).reshape(s, B, P, H).permute(1, 3, 0, 2)

    def local_losses(self, ctx: LearningContext, state: BranchState) -> list[Tensor]:
        self._check(ctx, state)
        trained = self.trained_layers(len(ctx.branches))
        out = []
        for l, z in enumerate(ctx.branches, 1):
            if l in trained:
                out.append(self._layer_loss(z, state.projections[l - 1]))
            else:
                out.append(z.sum() * 0.0)
        return out

    def learning_signals(self, ctx: LearningContext, state: BranchState) -> list[Tensor]:
        self._check(ctx, state)
        trained = self.trained_layers(len(ctx.branches))
        with torch.no_grad():
            return [self._layer_signal(z.detach(), state.projections[l - 1]) if l in trained
                    else torch.zeros_like(z) for l, z in enumerate(ctx.branches, 1)]

    # -- the pre-synaptic transform ----------------------------------------------------------
    def update_state(self, ctx: LearningContext, state: BranchState, lr: float) -> BranchState:
        """Running covariance of every trained layer's tap inputs (``ctx.branch_inputs``)."""
        if self.options["whiten"] is None:
            return state
        if ctx.branch_inputs is None:
            raise ConfigError(f"rule {self.name!r} with whiten needs the tap inputs (ctx.branch_inputs)")
        decay = float(self.options["cov_decay"])
        trained = self.trained_layers(len(state.layer_shapes))
        covs, masses = [], []
        with torch.no_grad():
            for l, (x, old, mass) in enumerate(zip(ctx.branch_inputs, state.cov, state.cov_mass), 1):
                if l not in trained:
                    covs.append(None)
                    masses.append(0.0)
                    continue
                X = x.detach().permute(2, 0, 3, 1)  # [s, B, P, C]
                X = X.reshape(X.shape[0], -1, X.shape[-1])
                X = X - X.mean(1, keepdim=True)
                batch_cov = torch.einsum("kni,knj->kij", X, X) / X.shape[1]
                if old is None:  # isotropic prior (the batch's mean variance) worth PRIOR_BATCHES batches
                    m = torch.diagonal(batch_cov, dim1=1, dim2=2).mean(-1)[:, None, None]
                    old = m * torch.eye(batch_cov.shape[-1], dtype=batch_cov.dtype, device=batch_cov.device)
                    mass = PRIOR_BATCHES * (1 - decay)
                new_mass = decay * mass + (1 - decay)  # bias-corrected EMA: weights normalised to 1
                covs.append((decay * mass * old + (1 - decay) * batch_cov) / new_mass)
                masses.append(new_mass)
        return state._replace(cov=covs, cov_mass=masses)

    def presynaptic_transforms(self, state: BranchState) -> list[list[Tensor] | None]:
        eps = self.options["whiten"]
        out = []
        for cov in state.cov:
            if eps is None or cov is None:
                out.append(None)
                continue
            C = cov.shape[-1]
            m = (torch.diagonal(cov, dim1=1, dim2=2).sum(-1) / C).clamp_min(1e-12)  # mean input variance per tap
            eye = torch.eye(C, dtype=cov.dtype, device=cov.device)
            Q = torch.linalg.inv(cov.double() + (eps * m.double())[:, None, None] * eye.double())
            Q = (Q * m.double()[:, None, None]).to(cov.dtype)
            out.append(list(Q))
        return out


def _ema(old: Tensor | None, new: Tensor, mass: float, decay: float) -> tuple[Tensor, float]:
    """Bias-corrected exponential average: ``(decay mass old + (1 - decay) new) / mass'`` (``new`` when empty)."""
    new_mass = decay * mass + (1 - decay)
    if old is None or mass == 0:
        return new, new_mass
    return (decay * mass * old + (1 - decay) * new) / new_mass, new_mass


class OnlineBranchState(NamedTuple):
    """:class:`BranchState` plus the online rule's running statistics per layer: branch means ``zbar``, projected
    auto-covariances ``auto`` and their EMA mass, tap-input means ``xbar`` and variances ``var``, lateral ``Q``."""

    layer_shapes: list[tuple[int, int]]
    taps: int
    projections: list[list[Tensor]]
    cov: list[Tensor | None]
    cov_mass: list[float]
    zbar: list[Tensor | None]
    auto: list[Tensor | None]
    stat_mass: list[float]
    xbar: list[Tensor | None]
    var: list[Tensor | None]
    Q: list[Tensor | None]
    __getitem__ = field_by_name


@register
class OnlineSiblingCCA(SiblingCCA):
    r"""``sibling-cca`` from running statistics, for batches of one sample: no batch statistic, no inverse.

    The batch rule centres the branches, and forms the projections' auto-covariances ``C_kk``, over the
    batch's sites, and inverts the tap-input covariance for ``Q``.  Here every statistic is a bias-corrected
    exponential average over batches (decay ``cov_decay``; with ``cov_decay = 0`` the signal is the batch
    rule's): the branch means ``zbar_k`` (the soma's mean is ``sum_k zbar_k``), ``C_kk = avg y_k y_k^T`` with
    ``y_k = R_k (z_k - zbar_k)``.  ``Q_k`` is a lateral circuit on the tap's input learned by an anti-Hebbian
    rule (``u = Q_k xc``, ``xc = x - xbar``, ``m`` the running mean input variance, ``C`` the input width)::

        Q_k <- Q_k + (lateral_lr / C) (I - eps Q_k - sym(mean_n u xc^T) / m)

    whose fixed point is ``(C_x / m + eps I)^{-1} = m (C_x + eps m I)^{-1}``, the batch rule's ``Q``
    (``sym(A) = (A + A^T) / 2``); it starts at ``I``.
    """

    name = "sibling-cca-online"
    summary = "sibling-cca from running statistics (works at batch 1): anti-Hebbian lateral whitening, no inverse"
    # for batches of one sample; chosen on (8,4,8,2,2), P = 384, width 64, 30 epochs, seed 0 only: batch 1 with
    # lr / cov_decay 1 / 0.9 -> 0.08, 0.3 / 0.99 -> 0.52, 3 / 0.9 diverged; batch 4, 3 / 0.9 -> 0.32; batch 32, lr 100:
    # diverged at decay 0.9 and 0.99, 0.23 at 0.5, 0.03 at 0 (batch statistics; the batch rule: 0.02).
    # lateral_lr on validation points (0.25 of P = 384, seed 0, batch 1, lr 1; rate / Norse T = 30 probe error):
    # 1 -> 0.33 / 0.49, 0.5 -> 0.25 / 0.41, 0.25 -> 0.31 / 0.41.  One sample's step on Q is
    # (lateral_lr / C) |xc|^2 / m along xc, ~lateral_lr on average: at 1 every sample of twice the mean input
    # power overshoots, and Q (started at I) turns indefinite (smallest eigenvalue -0.15 to -0.39 after 1000 samples
    # here; experiments/spiking/scca_online_updates.py)
    default_lr = 1.0
    option_defaults = {**SiblingCCA.option_defaults, "cov_decay": 0.9,
                       "lateral_lr": 0.5}  # the step of Q is lateral_lr / C

    def __init__(self, **options: Any):
        super().__init__(**options)
        lr = self.options["lateral_lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 2:
            raise ConfigError(f"lateral_lr must be a number in (0, 2], got {lr!r}")

    def init_state(self, layer_shapes, n_out, generator, dtype=torch.float32, device="cpu", taps: int = 2
                   ) -> RuleState:
        state = super().init_state(layer_shapes, n_out, generator, dtype, device, taps)
        n = len(state.layer_shapes)
        return OnlineBranchState(*state, zbar=[None] * n, auto=[None] * n, stat_mass=[0.0] * n, xbar=[None] * n,
                                 var=[None] * n, Q=[None] * n)

    def _check(self, ctx: LearningContext, state: RuleState) -> None:
        if ctx.branches is None:
            raise ConfigError(f"rule {self.name!r} needs the branch pre-activations (ctx.branches); this back end "
                              "or architecture does not provide them (use arch = cnn or lcn)")
        for l, (z, (H, P)) in enumerate(zip(ctx.branches, state["layer_shapes"]), 1):
            if z.dim() != 4 or tuple(z.shape[1:]) != (H, state["taps"], P):
                raise ConfigError(f"rule {self.name!r}: layer {l} branches have shape {tuple(z.shape)}, expected "
                                  f"[B, {H}, {state['taps']}, {P}]")

    def _statistics(self, z: Tensor, R: Sequence[Tensor], l: int, state: RuleState):
        """Sites, centred branches, projections and the running ``(zbar, C_kk, mass)`` after this batch."""
        decay = float(self.options["cov_decay"])
        Z = self._sites(z)  # [s, n, H]
        zbar, _ = _ema(state["zbar"][l], Z.mean(1), state["stat_mass"][l], decay)
        Zc = [Z[k] - zbar[k] for k in range(Z.shape[0])]
        Y = [zc @ R[k].T for k, zc in enumerate(Zc)]
        batch_auto = torch.stack([y.T @ y / y.shape[0] for y in Y])
        auto, mass = _ema(state["auto"][l], batch_auto, state["stat_mass"][l], decay)
        return Z, Zc, Y, zbar, auto, mass

    def _layer_signal_online(self, z: Tensor, R: Sequence[Tensor], l: int, state: RuleState) -> Tensor:
        Z, Zc, Y, zbar, auto, _ = self._statistics(z, R, l, state)
        return self._signal(z.shape, Zc, Y, list(auto), zbar.sum(0, keepdim=True), R)

    def learning_signals(self, ctx: LearningContext, state: RuleState) -> list[Tensor]:
        self._check(ctx, state)
        trained = self.trained_layers(len(ctx.branches))
        with torch.no_grad():
            return [self._layer_signal_online(z.detach(), state["projections"][l - 1], l - 1, state)
                    if l in trained else torch.zeros_like(z) for l, z in enumerate(ctx.branches, 1)]

    def local_losses(self, ctx, state):
        raise ConfigError(f"rule {self.name!r} has no batch loss (its statistics are running averages); "
                          "use sibling-cca for autograd")

    def update_state(self, ctx: LearningContext, state: RuleState, lr: float) -> RuleState:
        """Running branch statistics of every trained layer, and one anti-Hebbian step of its ``Q``."""
        self._check(ctx, state)
        decay, eps = float(self.options["cov_decay"]), self.options["whiten"]
        trained = self.trained_layers(len(state["layer_shapes"]))
        new = {key: list(state[key]) for key in ("zbar", "auto", "stat_mass", "xbar", "var", "Q")}
        with torch.no_grad():
            for l, z in enumerate(ctx.branches):
                if l + 1 not in trained:
                    continue
                _, _, _, new["zbar"][l], new["auto"][l], new["stat_mass"][l] = self._statistics(
                    z.detach(), state["projections"][l], l, state)
                if eps is None:
                    continue
                if ctx.branch_inputs is None:
                    raise ConfigError(f"rule {self.name!r} with whiten needs the tap inputs (ctx.branch_inputs)")
                X = ctx.branch_inputs[l].detach().permute(2, 0, 3, 1)  # [s, B, P, C]
                X = X.reshape(X.shape[0], -1, X.shape[-1])
                mass = state["stat_mass"][l]
                xbar, _ = _ema(state["xbar"][l], X.mean(1), mass, decay)
                Xc = X - xbar[:, None, :]
                var, _ = _ema(state["var"][l], (Xc * Xc).mean((1, 2)), mass, decay)
                C = X.shape[-1]
                eye = torch.eye(C, dtype=X.dtype, device=X.device)
                Q = state["Q"][l] if state["Q"][l] is not None else eye.expand(X.shape[0], C, C).clone()
                U = torch.einsum("kij,knj->kni", Q, Xc)  # lateral output u = Q xc
                hebb = torch.einsum("kni,knj->kij", U, Xc) / X.shape[1]
                hebb = (hebb + hebb.transpose(1, 2)) / 2 / var.clamp_min(1e-12)[:, None, None]
                new["Q"][l] = Q + float(self.options["lateral_lr"]) / C * (eye - float(eps) * Q - hebb)
                new["xbar"][l], new["var"][l] = xbar, var
        return state._replace(**new)

    def presynaptic_transforms(self, state: RuleState) -> list[list[Tensor] | None]:
        return [None if Q is None else list(Q) for Q in state["Q"]]


__all__ = ["BranchRule", "BranchState", "OnlineBranchState", "OnlineSiblingCCA", "PRIOR_BATCHES", "SiblingCCA", "branch_pre_activations", "branch_step",
           "branch_weight_gradient", "precondition_", "taps_of"]
