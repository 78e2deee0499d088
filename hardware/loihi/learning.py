r"""On-chip three-factor learning on Lava: the Norse learner's update, computed by Loihi's learning engine.

One presentation (``spiking_rhm.backends.norse.learners.ThreeFactorLearner`` step) as Loihi 2
would run it: every hidden layer is a ``LearningDense`` synapse with a ``Loihi3FLearningRule``
feeding a :class:`~hardware.loihi.process.ThreeFactorLIF` neuron.  Per synapse ``i -> j``:

    pre trace (x1, impulse 1, tau = tau_pre / dt):   x1 <- a x1 + z_i
    tag (t = tag_1):   dt = (u0 x1 y1 - x0 y1) d - u0 t y3 ,   y1 = ((1-k) c / a) psi_j,   y3 = 1 - k
                       =>  t <- k t + (1-k) psi_j(t) xbar_i(t-1)       (xbar = c x1, c = (1-a) / rho_in)
    weight:            dw = u0 t y2 ,   y2 = -eta c^l (dv gain_l / sqrt(K_l)) L^l_j k^-(L-l)

``d = tag_2`` is a fixed 0/1 mask of the synapses that exist (the patch of a conv/LCN unit, one copy
of a batch), so the dense matrix learns only where the network has connections.
``x0 y1`` removes the pre spike of the current step from ``x1``: Lava's synapses delay by one step,
so the spike that drove ``psi_j(t)`` is the pre spike of step ``t-1``, the pairing of the Norse
trace (``e <- k e + (1-k) psi xbar``, same-step).  ``y2`` is 0 during the presentation; after it
(``T + depth + 1`` steps) the host reads the spikes, builds the rule's
:class:`~spiking_rhm.rules.base.LearningContext` from them exactly as the Norse learner does,
asks the rule for ``L^l`` (any registered rule without positive views or branch signals), sets
``factor`` and runs one more step, in which the engine applies ``dw``.  ``k^-(L-l)`` undoes the
tag's decay over the steps between layer l's window and that step; ``c^l`` is the eligibility
scale (``none`` or ``expected``: ``f_active / ebar`` from the neurons' ``ebar``).

Loihi has no weight sharing: a conv layer's synapses learn independently on chip (as an LCN);
:func:`three_factor_step` also returns the update summed over positions (the tied-weight
gradient) for comparison with Norse.  A batch of N samples is N copies side by side, each with
its own synapses (block-diagonal weights and mask; the dense matrix costs (N n)^2 memory, so keep
batches small).  (``LearningSparse`` would avoid the mask, but Lava 0.10's float learning engine
multiplies its sparse tags with ``*``, a matrix product for scipy matrices, and fails.)
"""

from __future__ import annotations

import copy
import math
from typing import NamedTuple

import numpy as np
import torch

from hardware.loihi.network import from_nir, lava, lava_session, run_steps
from hardware.nir_graph import to_nir, undense_weight
from spiking_rhm.errors import ConfigError
from spiking_rhm.plasticity import (
    ELIGIBILITY_SCALES,
    active_fraction,
    eligibility_scale,
    gradient_factor,
    learning_context,
    non_local_needs,
)

SCALES = tuple(ELIGIBILITY_SCALES)
DT_RULE = "u0 * x1 * y1 * d - x0 * y1 * d - u0 * t * y3"
DW_RULE = "u0 * t * y2"


class LavaStep(NamedTuple):
    grads: list[np.ndarray]  # per layer, the shape of W^l (summed over copies and, if shared, positions)
    chip_updates: list[np.ndarray]  # per layer, Delta of the on-chip weights (units of u per spike), [N*n_out, N*n_in]
    signals: list[torch.Tensor]  # L^l [N, H, P]
    counts: list[np.ndarray]  # spike counts per layer [N, P, H] (the Norse layout)
    logits: torch.Tensor
    rule_state: object


class HostSignals(NamedTuple):
    counts: list[np.ndarray]  # per layer [N, P, H]
    signals: list[torch.Tensor]  # L^l [N, H, P]
    logits: torch.Tensor
    rule_state: object
    y2: list[np.ndarray]  # per layer, the real y2 of every neuron [N * H * P] (weight per unit of eligibility)


def host_signals(net, rule, rule_state, raw: list[np.ndarray], v_sums: list[np.ndarray], ebars: list[float],
                 target: torch.Tensor, lr: float, scale: str, layers, T: int) -> HostSignals:
    """What the host does after a plastic window: spike counts from the recorded trains ``raw``
    (``[steps, N * n_l]``), the rule's learning context and signals ``L^l``, and the factor
    ``y2 = -lr c^l (dv gain_l / sqrt(K_l)) L^l k^-(L-l)`` each neuron applies to its tags.
    ``v_sums`` are the neurons' summed potentials (real units), ``ebars`` their mean expected eligibility."""
    from spiking_rhm.backends.norse.network import rates

    spec, params = net.spec, net.params
    N = raw[0].shape[1] // (spec.widths[0] * spec.positions[1])
    depth = spec.depth
    k = math.exp(-params.dt * params.elig.tau_elig_inv)
    counts = []
    for l, z in enumerate(raw):
        H, P = spec.widths[l], spec.positions[l + 1]
        window = z[l + 1:l + 1 + T].reshape(T, N, H, P)  # layer l lags the input by l + 1 steps
        counts.append(window.sum(0).transpose(0, 2, 1))  # [N, P, H]
    dtype = net.readout_weight.dtype
    count_t = [torch.as_tensor(cnt, dtype=dtype) for cnt in counts]
    v_mean = [np.asarray(v).reshape(N, spec.widths[l], spec.positions[l + 1]) / T for l, v in enumerate(v_sums)]
    ctx = learning_context(rule, [rates(cnt, T, params) for cnt in count_t], net.readout(count_t[-1], T),
                           target.to(dtype),
                           pre_activations=[torch.as_tensor(v, dtype=dtype) - (params.psi.v_th - params.lif.v_reset)
                                            for v in v_mean],
                           weights=list(net.hidden))
    signals = rule.learning_signals(ctx, rule_state)
    rule_state = rule.update_state(ctx, rule_state, lr)
    y2 = []
    for l, L in enumerate(signals):
        ebar = ebars[l] if scale == "expected" else 1.0
        c_l = float(eligibility_scale(scale).factor(ebar, active_fraction(count_t[l])))
        gain = layers[l].dv * params.gains[l]
        y = -lr * gain * gradient_factor(c_l, spec.fan_in[l]) * k ** -(depth - l) * L.detach().cpu().numpy()
        y2.append(y.reshape(-1))  # [N, H, P] -> neuron j * P + p of copy b
    return HostSignals(counts, list(signals), ctx.output, rule_state, y2)


def _wire(lv, prev, syn, neuron, steps: int, synapses: list, neurons: list, taps: list):
    """Connect ``prev -> syn -> neuron`` (with the neuron's learning ports into the synapse) and a spike
    tap of ``steps`` steps; append them to the lists; returns the neuron's spike port."""
    prev.connect(syn.s_in)
    syn.a_out.connect(neuron.a_in)
    for port in ("bap", "y1", "y2", "y3"):
        getattr(neuron, f"s_out_{port}").connect(getattr(syn, f"s_in_{port}"))
    tap = lv.Extractor(shape=neuron.s_out.shape, buffer_size=steps)
    neuron.s_out.connect(tap.in_port)
    synapses.append(syn)
    neurons.append(neuron)
    taps.append(tap)
    return neuron.s_out


def three_factor_step(net, rule, rule_state, spikes: torch.Tensor, target: torch.Tensor, lr: float,
                      scale: str = "none") -> LavaStep:
    """One plastic presentation of ``spikes [T, N, C, d]`` on Lava (float), then the rule's update.

    ``net`` is a :class:`~spiking_rhm.backends.norse.deployed.TrainedNetwork` whose readout is the
    delta readout ``(beta / H, 0)`` of the weights being trained (its logits feed the rule's
    output error).  The returned ``grads`` follow the Norse learner's convention
    (``W <- W - lr grad``).
    """
    _check_rule(rule, scale)
    lv = lava()
    from hardware.loihi import models  # noqa: F401  (registers the ThreeFactorLIF ProcessModel)
    from hardware.loihi.process import ThreeFactorLIF

    spec, params = net.spec, net.params
    T, N = spikes.shape[:2]
    depth = spec.depth
    layers = from_nir(to_nir(net)).layers
    dt = params.dt
    a = math.exp(-dt * params.pre.tau_pre_inv)
    k = math.exp(-dt * params.elig.tau_elig_inv)
    steps = T + depth + 1
    data = np.zeros((N * int(np.prod(spikes.shape[2:])), steps))
    data[:, :T] = spikes.detach().cpu().numpy().reshape(T, -1).T
    source = lv.Source(data=data)
    prev, synapses, neurons, taps = source.s_out, [], [], []
    for l, layer in enumerate(layers):
        rule_l = lv.Loihi3FLearningRule(dw=DW_RULE, dt=DT_RULE, x1_impulse=1.0,
                                         x1_tau=float(1 / (dt * params.pre.tau_pre_inv)), t_epoch=1)
        block = np.kron(np.eye(N), layer.weight)
        mask = np.kron(np.eye(N), (layer.weight != 0).astype(np.float64))  # the synapses that exist
        syn = lv.LearningDense(weights=block, learning_rule=rule_l, tag_1=np.zeros_like(block), tag_2=mask)
        n = block.shape[0]
        c = (1 - a) / params.rho_in[l]
        neuron = ThreeFactorLIF(shape=(n,), learning_rule=rule_l, u=0.0, v=np.tile(layer.v_init, N), du=layer.du,
                                dv=layer.dv, bias_mant=np.tile(layer.bias, N), vth=layer.vth,
                                psi_vth=float(params.psi.v_th - params.lif.v_reset), psi_beta=float(params.psi.beta),
                                plastic_start=l + 2, plastic_stop=T + l + 2, y1_scale=(1 - k) * c / a, tag_decay=k,
                                pre_decay=a)
        prev = _wire(lv, prev, syn, neuron, steps, synapses, neurons, taps)
    cfg = lv.run_cfg("float")
    with lava_session(source):
        before = [np.asarray(syn.weights.get()) for syn in synapses]
        run_steps(source, steps, cfg)
        raw = [np.stack([tap.receive() for _ in range(steps)]) for tap in taps]  # [steps, N * n_l]
        v_sums = [np.asarray(nrn.v_sum.get()) for nrn in neurons]
        ebars = [float(np.asarray(nrn.ebar.get()).mean()) for nrn in neurons]
        host = host_signals(net, rule, rule_state, raw, v_sums, ebars, target, lr, scale, layers, T)
        for nrn, y2 in zip(neurons, host.y2):
            nrn.factor.set(y2)
        run_steps(source, 1, cfg)
        after = [np.asarray(syn.weights.get()) for syn in synapses]
    counts, signals, logits, rule_state = host.counts, host.signals, host.logits, host.rule_state
    chip, grads = [], []
    for l, (w0, w1) in enumerate(zip(before, after)):
        delta = w1 - w0
        chip.append(delta)
        n_out, n_in = delta.shape[0] // N, delta.shape[1] // N
        per_copy = [undense_weight(delta[b * n_out:(b + 1) * n_out, b * n_in:(b + 1) * n_in], spec.positions[l],
                                   spec.patch, spec.widths[l], untied=True) for b in range(N)]
        total = np.sum(per_copy, axis=0)  # [P, H, K] (dense layer: [1, H, K])
        if spec.connectivity.shared:
            total = total.sum(0)
        grads.append(-total / (lr * layers[l].dv * params.gains[l]))
    return LavaStep(grads, chip, list(signals), counts, logits, rule_state)



# --------------------------------------------------------------------------- Loihi integers
FIXED_ENGINES = ("numpy", "lava")


class FixedChip:
    """A network's state on Loihi's bit-approximate learning engine (:mod:`hardware.loihi.fixed_learning`).

    Holds, per layer, the integer neuron parameters (:func:`~hardware.loihi.fixed_point.quantise`
    with ``headroom``: the initial weights use ``1 / headroom`` of the 8-bit range), the integer
    weights of one copy ``[n_out, n_in]``, the mask of the synapses that exist, the integer rule
    (:func:`~hardware.loihi.fixed_learning.design`; its weight scaling is fixed at the first
    presentation) and the random streams of a chip that keeps running.
    """

    def __init__(self, net, headroom: float = 2.0, rng_seed: int = 0) -> None:
        from hardware.loihi.fixed_learning import LavaRandom, design
        from hardware.loihi.fixed_point import quantise

        params = net.params
        self.spec, self.params = net.spec, params
        self.layers = from_nir(to_nir(net)).layers
        self.neurons = [quantise(layer, headroom=headroom) for layer in self.layers]
        self.masks = [layer.weight != 0 for layer in self.layers]
        self.weights = [n.weight.astype(np.int64) for n in self.neurons]
        self.weight_units = [2.0**n.weight_exp * 64 / n.scale for n in self.neurons]
        self.pre_tau = float(1 / (params.dt * params.pre.tau_pre_inv))
        self.tag_decay = math.exp(-params.dt * params.elig.tau_elig_inv)
        self.rules = [design(self.pre_tau, self.tag_decay, (1 - math.exp(-1 / self.pre_tau)) / params.rho_in[l])
                      ._replace(weight=None) for l in range(len(self.layers))]
        self.rng_seed = int(rng_seed)
        self.random = [LavaRandom(self.rng_seed) for _ in self.layers]

    def fixed_layers(self):
        """The integer layers with the current weights (for inference)."""
        return [n._replace(weight=W) for n, W in zip(self.neurons, self.weights)]

    def hidden(self) -> list[torch.Tensor]:
        """The current weights in the Norse layout (real values of the integers)."""
        return [torch.as_tensor(self.to_norse(W * unit, l))
                for l, (W, unit) in enumerate(zip(self.weights, self.weight_units))]

    def to_norse(self, dense: np.ndarray, l: int) -> np.ndarray:
        """A dense matrix of layer l (one copy, units of u) in the Norse layout of ``W^l``."""
        spec = self.spec
        W = undense_weight(dense, spec.positions[l], spec.patch, spec.widths[l], untied=True)
        W = W.sum(0) if spec.connectivity.shared else W
        return W / (self.layers[l].dv * self.params.gains[l])

    def counts(self, spikes: np.ndarray) -> list[np.ndarray]:
        """Spike counts ``[N, P, H]`` per layer of the integer network (inference) on ``spikes [T, N, ...]``."""
        from hardware.loihi.fixed_point import simulate_fixed

        T, N = spikes.shape[:2]
        depth = self.spec.depth
        x = np.zeros((T + depth + 1, N, int(np.prod(spikes.shape[2:]))), dtype=np.int8)
        x[:T] = spikes.reshape(T, N, -1)
        out = []
        for l, z in enumerate(simulate_fixed(self.fixed_layers(), x)):
            H, P = self.spec.widths[l], self.spec.positions[l + 1]
            out.append(z[l + 1:l + 1 + T].sum(0, dtype=np.int64).reshape(N, H, P).transpose(0, 2, 1))
        return out


class FixedStep(NamedTuple):
    deltas: list[np.ndarray]  # per layer, the integer weight change of every copy [N, n_out, n_in] (masked)
    signals: list[torch.Tensor]
    counts: list[np.ndarray]
    logits: torch.Tensor
    rule_state: object
    stats: dict  # y2 clipped / rounded to 0, tags at their bounds (fractions)
    weights: list[np.ndarray]  # per layer, every copy's integer weights after the update [N, n_out, n_in] (unmasked)
    tags: list[np.ndarray]  # per layer, every copy's tags after the update step [N, n_out, n_in]


def _check_rule(rule, scale: str) -> None:
    if scale not in SCALES:
        raise ConfigError(f"eligibility scale must be one of {', '.join(SCALES)}, got {scale!r}")
    caps = rule.capabilities
    if caps.branch:
        raise ConfigError(f"rule {rule.name!r} puts its signal on dendritic branches: not available on the Loihi path")
    if caps.second_view:
        raise ConfigError(f"rule {rule.name!r} needs positive views (a second presentation): not available on the "
                          "Loihi path yet")
    if non_local_needs(rule):
        raise ConfigError(f"rule {rule.name!r} needs backprop through the layers, which no chip computes")


def fixed_three_factor_step(chip: FixedChip, net, rule, rule_state, spikes: torch.Tensor, target: torch.Tensor,
                            lr: float, scale: str = "none", engine: str = "numpy",
                            continuous: bool = True) -> FixedStep:
    """One plastic presentation in Loihi's integers: the rule of :func:`three_factor_step` on the
    bit-approximate learning engine, from the chip's integer weights.

    ``engine="lava"`` runs Lava's ``LearningDense`` (bit-approximate model) with the integer
    ``ThreeFactorLIF``; ``engine="numpy"`` runs :class:`~hardware.loihi.fixed_learning.BitApproxLayer`.
    ``continuous`` (numpy only) continues the chip's random streams and keeps odd weights; without it
    the numpy engine starts as a new Lava process does (fresh streams, weights truncated to even).
    While the chip's learning-signal scaling is unset, the Lava engine first runs the presentation
    once without learning to fix it (the numpy engine fixes it within the presentation: the same).
    ``net`` supplies the readout and the rule's context, as in :func:`three_factor_step`.
    """
    from hardware.loihi.fixed_learning import (
        TAG_RANGE,
        BitApproxLayer,
        LavaRandom,
        Scaling,
        with_weight_scaling,
    )

    _check_rule(rule, scale)
    if engine not in FIXED_ENGINES:
        raise ConfigError(f"fixed-point engine must be one of {', '.join(FIXED_ENGINES)}, got {engine!r}")
    spec, params = chip.spec, chip.params
    T, N = spikes.shape[:2]
    depth = spec.depth
    steps = T + depth + 1
    a, k = math.exp(-1 / chip.pre_tau), chip.tag_decay
    x = np.zeros((steps + 1, N * int(np.prod(spikes.shape[2:]))), dtype=bool)
    x[:T] = spikes.detach().cpu().numpy().reshape(T, -1) > 0
    x[steps] = x[0]  # the ring buffer starts again in the update step
    v_scales = [1.0 / n.scale for n in chip.neurons]
    psi_vth, psi_beta = float(params.psi.v_th - params.lif.v_reset), float(params.psi.beta)

    def quantise_y2(host):
        rules, Y2, stats = [], [], {"y2_clipped": 0.0, "y2_zeroed": 0.0}
        for l, y2 in enumerate(host.y2):
            r = chip.rules[l]
            if r.weight is None:  # the chip's weight scaling is set once, by the first presentation
                r = chip.rules[l] = with_weight_scaling(r, float(np.abs(y2).max()) or 1.0, chip.weight_units[l])
            q = r.signal_unit(chip.weight_units[l])
            Y = np.rint(y2 / q)
            stats["y2_clipped"] += float(np.mean(np.abs(Y) > 127)) / depth
            stats["y2_zeroed"] += float(np.mean((Y == 0) & (y2 != 0))) / depth
            Y2.append(np.clip(Y, -128, 127).astype(np.int64))
            rules.append(r)
        return Y2, stats

    if engine == "numpy":
        copies = [np.broadcast_to(W, (N, *W.shape)) for W in chip.weights]
        streams = chip.random if continuous else [LavaRandom(chip.rng_seed) for _ in chip.rules]
        layers = [BitApproxLayer(block, neuron, chip.rules[l], streams[l],
                                 psi_vth, psi_beta, v_scales[l], (l + 2, T + l + 2), k, a, truncate=not continuous)
                  for l, (block, neuron) in enumerate(zip(copies, chip.neurons))]
        before = [layer.weight.copy() for layer in layers]
        raw = [np.zeros((steps, N * W.shape[0]), dtype=np.int8) for W in chip.weights]
        for t in range(steps + 1):
            if t == steps:
                host = host_signals(net, rule, rule_state, raw,
                                    [ly.v_sum.reshape(-1) * s for ly, s in zip(layers, v_scales)],
                                    [float(ly.ebar.mean()) for ly in layers], target, lr, scale, chip.layers, T)
                Y2, stats = quantise_y2(host)
                for layer, Y, r in zip(layers, Y2, chip.rules):
                    layer.factor, layer.rule = Y.reshape(N, -1), r
            pre = x[t].reshape(N, -1)
            for l, layer in enumerate(layers):
                z = layer.step(pre)
                if t < steps:
                    raw[l][t] = z.reshape(-1)
                pre = z
        deltas = [layer.weight - w0 for layer, w0 in zip(layers, before)]
        after = [layer.weight for layer in layers]
        tags = [layer.tag for layer in layers]
    else:
        blocks = [np.kron(np.eye(N, dtype=np.int64), W) for W in chip.weights]
        lv = lava()
        from hardware.loihi import models  # noqa: F401  (registers the ThreeFactorLIF ProcessModels)
        from hardware.loihi.process import ThreeFactorLIF

        def run_lava(update: bool):
            """One Lava run; without ``update`` only the window (a calibration: no learning signal is sent)."""
            source = lv.Source(data=np.ascontiguousarray(x[:steps].T.astype(np.int32)))
            prev, synapses, neurons, taps = source.s_out, [], [], []
            for l, (block, neuron, r) in enumerate(zip(blocks, chip.neurons, chip.rules)):
                r = r if r.weight is not None else r._replace(weight=Scaling(1, -7))  # (y2 = 0 in a calibration)
                rule_l = lv.Loihi3FLearningRule(dw=r.dw_rule(), dt=r.dt_rule(), x1_impulse=float(r.impulse),
                                                 x1_tau=r.pre_tau, t_epoch=1, rng_seed=chip.rng_seed)
                syn = lv.LearningDense(weights=block.astype(np.int32), weight_exp=neuron.weight_exp,
                                       num_weight_bits=8, sign_mode=lv.SignMode.MIXED, learning_rule=rule_l,
                                       tag_1=np.zeros(block.shape, dtype=np.int32))
                n = block.shape[0]
                reps = n // neuron.v_init.shape[0]
                nrn = ThreeFactorLIF(shape=(n,), learning_rule=rule_l, u=0, v=np.tile(neuron.v_init, reps),
                                     du=neuron.du, dv=neuron.dv, bias_mant=np.tile(neuron.bias_mant, reps),
                                     bias_exp=np.tile(neuron.bias_exp, reps), vth=neuron.vth, psi_vth=psi_vth,
                                     psi_beta=psi_beta, plastic_start=l + 2, plastic_stop=T + l + 2, y1_scale=0.0,
                                     tag_decay=k, pre_decay=a, v_scale=v_scales[l], y3=r.y3)
                prev = _wire(lv, prev, syn, nrn, steps, synapses, neurons, taps)
            cfg = lv.run_cfg("fixed")
            with lava_session(source):
                run_steps(source, steps, cfg)
                raw = [np.stack([tap.receive() for _ in range(steps)]) for tap in taps]
                v_sums = [np.asarray(nrn.v_sum.get()) * s for nrn, s in zip(neurons, v_scales)]
                ebars = [float(np.asarray(nrn.ebar.get()).mean()) for nrn in neurons]
                host = host_signals(net, rule, rule_state if update else copy.deepcopy(rule_state), raw, v_sums,
                                    ebars, target, lr, scale, chip.layers, T)
                if not update:
                    return host, None, None, None
                Y2, stats = quantise_y2(host)
                for nrn, Y in zip(neurons, Y2):
                    nrn.factor.set(Y)
                run_steps(source, 1, cfg)
                after = [np.asarray(syn.weights.get()).astype(np.int64) for syn in synapses]
                tags = [np.asarray(syn.tag_1.get()).astype(np.int64) for syn in synapses]
            return host, stats, after, tags

        if any(r.weight is None for r in chip.rules):  # the first presentation fixes the signal's scaling
            quantise_y2(run_lava(update=False)[0])
        host, stats, after, tags = run_lava(update=True)
        before = [(block >> 1) << 1 for block in blocks]  # Lava truncates the weights on its first step

        def diagonal(M, l):  # copy b's block of a block-diagonal matrix
            n_out, n_in = chip.weights[l].shape
            return np.stack([M[b * n_out:(b + 1) * n_out, b * n_in:(b + 1) * n_in] for b in range(N)])

        deltas = [diagonal(w1 - w0, l) for l, (w0, w1) in enumerate(zip(before, after))]
        after = [diagonal(w1, l) for l, w1 in enumerate(after)]
        tags = [diagonal(tag, l) for l, tag in enumerate(tags)]
    for l, tag in enumerate(tags):
        stats[f"tag_saturated_{l}"] = float(np.mean((tag <= TAG_RANGE[0]) | (tag >= TAG_RANGE[1])))
    return FixedStep([d * mask for d, mask in zip(deltas, chip.masks)], host.signals, host.counts, host.logits,
                     host.rule_state, stats, after, tags)


__all__ = ["DT_RULE", "DW_RULE", "FIXED_ENGINES", "FixedChip", "FixedStep", "HostSignals", "LavaStep", "SCALES",
           "fixed_three_factor_step", "host_signals", "three_factor_step"]
