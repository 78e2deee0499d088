r"""The rule algebra shared by every back end.

Every rule updates hidden layer ``l`` by a learning signal times an eligibility trace::

    Delta W^l_ji = -eta * sum_{t, samples, positions} L^l_j(t) * e^l_ji(t),
    e^l_ji(t)    = psi^l_j(t) * pre^l_i(t)

* The **back end** computes the eligibility ``e`` from local quantities only
  (rate: ``psi = rho'(a)``, ``pre = h^{l-1}``; spiking: surrogate derivative x
  filtered pre-synaptic spikes, itself low-pass filtered).
* The **rule** computes the learning signal ``L^l`` -- the only thing a rule defines --
  from what a :class:`LearningContext` holds (layer activities of one or two views,
  output error, target).  ``L^l`` has the shape of the layer activity ``h^l``:
  ``[batch, channels, positions]``.

For every rule there is also a *local loss* ``ell^l`` such that
``d ell^l / d h^l == L^l`` with the layer input detached; ``tests/rules`` checks the
two forms against each other (explicit ``L x e`` of :mod:`spiking_rhm.plasticity`, with which
every back end trains, vs autograd of the local loss).

Rules are small classes registered by name (see :func:`register`, :func:`get_rule`);
their mutable parameters (feedback matrices, predictors) live in an explicit, typed state
(a NamedTuple per rule family, :data:`RuleState`) created by :meth:`Rule.init_state` and returned
by :meth:`Rule.update_state`, never on the rule object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Sequence

import torch

from spiking_rhm.errors import ConfigError
from spiking_rhm.registry import lookup, registrar

Tensor = torch.Tensor
RuleState = Any
"""A rule's own parameters: a NamedTuple per rule family (:class:`NoState` without any), opaque to the back
ends (a pytree of tensors and static shapes); the reference diagnostics keep a dict."""


def field_by_name(state: tuple, key):
    """``state["B"]`` as ``state.B``: read access by field name for code written against dict states
    (a typed state's ``__getitem__``; integer indices keep the tuple's meaning)."""
    return getattr(state, key) if isinstance(key, str) else tuple.__getitem__(state, key)


class NoState(NamedTuple):
    """The state of a rule without parameters of its own."""

# LearningContext fields that need backprop through the layers (no local back end computes them)
NON_LOCAL_FIELDS = frozenset({"bp_signals", "layer_vjp", "feedback_vjp"})


class SignalSite(str, enum.Enum):
    """Where a rule's learning signal lives, hence which eligibility the back end forms."""

    SOMA = "soma"  # L^l on h^l; eligibility psi x pre
    BRANCH = "branch"  # L^l on the tap branches z^l (spiking_rhm.rules.branch); eligibility Q x pre


@dataclass(frozen=True)
class Capabilities:
    """What a rule asks of a back end (:attr:`Rule.capabilities`), declared instead of probed."""

    signal_site: SignalSite = SignalSite.SOMA
    needs: frozenset[str] = frozenset()  # optional LearningContext fields the rule reads
    second_view: bool = False  # a second (positive) view of every sample is presented
    dendritic: bool = False  # the signal is a context / branch prediction a neuron with a dendrite receives there

    @property
    def branch(self) -> bool:
        return self.signal_site is SignalSite.BRANCH

    @property
    def non_local(self) -> list[str]:
        """The needed context fields that only backprop through the layers computes (sorted)."""
        return sorted(self.needs & NON_LOCAL_FIELDS)


@dataclass
class LearningContext:
    """Everything a rule may read to form its learning signals.

    Fields a back end cannot provide are ``None``; a rule that needs one raises.
    Activities are per layer, ``layers[l-1] = h^l`` of shape ``[B, H_l, P_l]``
    (P_l = number of positions; 1 for dense layers).
    """

    layers: Sequence[Tensor]  # h^1..h^L of the (anchor) view
    pre_activations: Sequence[Tensor] | None = None  # a^1..a^L (for masks, e.g. dfa-masked)
    output: Tensor | None = None  # readout output / logits [B, n_out]
    target: Tensor | None = None  # one-hot targets [B, n_out]
    positive: Sequence[Tensor] | None = None  # h^l of the positive view (same layout)
    negative: Sequence[Tensor] | None = None  # h^l of the negative view
    bp_signals: Sequence[Tensor] | None = None  # dLoss/dh^l by backprop (bp and diagnostics only)
    weights: Sequence[Tensor] | None = None  # forward weights (non-local diagnostics only)
    # layer_vjp(l, g): dLoss/dh^{l-1} [B, H, P_{l-1}] from g = dLoss/da^l [B, H, P_l] through the true
    # forward weights W^l (weight transport: bp-style non-local diagnostics only)
    layer_vjp: Callable[[int, Tensor], Tensor] | None = None
    # feedback_vjp(l, g, B): the same map with feedback weights B (the layout of W^l) in place of W^l -- an error
    # network along the tree with the forward layer's sparsity and weight tying (fa, dfa-masked; rate back end)
    feedback_vjp: Callable[[int, Tensor, Tensor], Tensor] | None = None
    # branch-local rules (spiking_rhm.rules.branch): per layer the tap branches z^l [B, H, s, P_l] (the layer's
    # pre-activation split by input tap, differentiable in W^l in the rate back end) and their inputs
    # x^l [B, C, s, P_l] (the pre-synaptic activity, detached)
    branches: Sequence[Tensor] | None = None
    branch_inputs: Sequence[Tensor] | None = None

    @property
    def error(self) -> Tensor:
        """Output error ``softmax(output) - target`` (the DFA-family broadcast vector)."""
        if self.output is None or self.target is None:
            raise ConfigError("this rule needs the readout output and the target")
        return torch.softmax(self.output, dim=-1) - self.target


class Rule:
    """Base class of a learning rule.  Subclasses set the class attributes and
    implement :meth:`learning_signals` and :meth:`local_losses`."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for ``spiking-rhm rules``
    family: ClassVar[str] = ""  # reference | direct-feedback | self-supervised | control | diagnostic
    supervised: ClassVar[bool] = True  # do hidden layers see labels?
    local: ClassVar[bool] = True  # False for bp and the non-local diagnostics
    default_lr: ClassVar[float] = 0.1
    # True: the back end multiplies the learning rate by the width H (mean-field parametrisation of
    # the reference RHM code, whose readout -- hence every backpropagated -- gradient is O(1/H))
    width_scaled_lr: ClassVar[bool] = False
    # optional LearningContext fields the rule reads (``bp_signals``, ``pre_activations``, ``output``,
    # ``target``, ``weights``, ``layer_vjp``); a back end may skip computing the others
    needs: ClassVar[frozenset[str]] = frozenset()
    option_defaults: ClassVar[Mapping[str, Any]] = {}
    # SOMA: signals L^l on h^l, eligibility psi x pre; BRANCH: signals on the tap branches z^l
    # (spiking_rhm.rules.branch), eligibility pre only; init_state then also takes ``taps`` = s
    signal_site: ClassVar[SignalSite] = SignalSite.SOMA
    option_choices: ClassVar[Mapping[str, tuple]] = {}  # options restricted to a set of values
    # True: L^l is exactly dLoss/dh^l of the readout's cross-entropy (bp), so ``grad W^l`` is the gradient of
    # that loss and a back end may compute it by plain backprop (its fast path)
    gradient_signal: ClassVar[bool] = False
    # True: the signal is a dendritic prediction (CLAPP's B c, a branch rule's per-tap target), which a back end
    # whose neuron has a dendrite delivers there (brian2 two-compartment, docs/brian2.md "Dendritic delivery")
    dendritic_signal: ClassVar[bool] = False

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            valid = ", ".join(sorted(self.option_defaults)) or "none"
            raise ConfigError(f"rule {self.name!r} takes no option(s) {', '.join(unknown)}; valid: {valid}")
        self.options = {**self.option_defaults, **options}
        for key, choices in self.option_choices.items():
            if self.options[key] not in choices:
                raise ConfigError(f"{self.name}: {key} must be one of {', '.join(map(str, choices))}, "
                                  f"got {self.options[key]!r}")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"

    # -- what the back end must provide -------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(SignalSite(self.signal_site), frozenset(self.needs), self.needs_second_view(),
                            self.dendritic_signal)

    def needs_second_view(self) -> bool:
        """True when the back end must present a positive view of every sample (:meth:`positive_view_levels`)."""
        return False

    def positive_view_levels(self, L: int) -> list[int] | None:
        """Resampling level of the positive view of each of the ``L`` hidden layers, or None (no second view)."""
        return None

    def data_use(self, L: int) -> dict:
        """What the rule uses beyond the P labelled training inputs (stored in every record)."""
        return {"pairs": None}

    # -- state ---------------------------------------------------------------
    def init_state(self, layer_shapes: Sequence[tuple[int, int]], n_out: int, generator: torch.Generator,
                   dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> RuleState:
        """Rule parameters (feedback matrices, predictors) for layers of shapes ``(H_l, P_l)``."""
        return NoState()

    def update_state(self, ctx: LearningContext, state: RuleState, lr: float) -> RuleState:
        """Local learning of the rule's own parameters (e.g. dkp's B, clapp's predictor)."""
        return state

    # -- the algebra -----------------------------------------------------------
    def learning_signals(self, ctx: LearningContext, state: RuleState) -> list[Tensor]:
        """``L^l`` for every hidden layer, each of the shape of ``h^l``."""
        raise NotImplementedError

    def local_losses(self, ctx: LearningContext, state: RuleState) -> list[Tensor]:
        """Scalar ``ell^l`` per hidden layer with ``d ell^l / d h^l = L^l``.

        Default, for rules defined by their signal (bp, the feedback family, controls): the surrogate
        ``<L^l, h^l>`` of :func:`inner_product_losses`.  Rules with a genuine local objective (the
        self-supervised family) override it and derive their signals from it."""
        return inner_product_losses(self.learning_signals(ctx, state), ctx.layers)


def inner_product_losses(signals: Sequence[Tensor], layers: Sequence[Tensor]) -> list[Tensor]:
    """``ell^l = sum L^l h^l`` with ``L^l`` detached: ``d ell^l / d h^l = L^l`` exactly."""
    return [(s.detach() * h).sum() for s, h in zip(signals, layers)]


_REGISTRY: dict[str, type[Rule]] = {}


register = registrar(_REGISTRY, "rule name")
"""Class decorator adding a rule to the registry under ``cls.name``."""


def _load_builtin_rules() -> None:
    # importing the modules registers their rules
    import importlib

    for module in ("reference", "feedback", "selfsupervised", "branch", "eprop"):
        try:
            importlib.import_module(f"spiking_rhm.rules.{module}")
        except ModuleNotFoundError as err:  # pragma: no cover - partial checkout
            if err.name != f"spiking_rhm.rules.{module}":
                raise


def available_rules() -> dict[str, type[Rule]]:
    """Registered rules by name, sorted."""
    _load_builtin_rules()
    return dict(sorted(_REGISTRY.items()))


def rule_class(name: str) -> type[Rule]:
    return lookup(available_rules(), name, "rule")


def get_rule(name: str, **options: Any) -> Rule:
    """Instantiate a registered rule; unknown names or options raise a clear error."""
    return rule_class(name)(**options)
