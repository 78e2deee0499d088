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


def three_factor_step(net, rule, rule_state, spikes: torch.Tensor, target: torch.Tensor, lr: float,
                      scale: str = "none") -> LavaStep:
    """One plastic presentation of ``spikes [T, N, C, d]`` on Lava (float), then the rule's update.

    ``net`` is a :class:`~spiking_rhm.backends.norse.deployed.TrainedNetwork` whose readout is the
    delta readout ``(beta / H, 0)`` of the weights being trained (its logits feed the rule's
    output error).  The returned ``grads`` follow the Norse learner's convention
    (``W <- W - lr grad``).
    """
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
    lv = lava()
    from hardware.loihi import models  # noqa: F401  (registers the ThreeFactorLIF ProcessModel)
    from hardware.loihi.process import ThreeFactorLIF
    from spiking_rhm.backends.norse.network import rates

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
        prev.connect(syn.s_in)
        syn.a_out.connect(neuron.a_in)
        for port in ("bap", "y1", "y2", "y3"):
            getattr(neuron, f"s_out_{port}").connect(getattr(syn, f"s_in_{port}"))
        tap = lv.Extractor(shape=(n,), buffer_size=steps)
        neuron.s_out.connect(tap.in_port)
        synapses.append(syn)
        neurons.append(neuron)
        taps.append(tap)
        prev = neuron.s_out
    cfg = lv.run_cfg("float")
    with lava_session(source):
        before = [np.asarray(syn.weights.get()) for syn in synapses]
        run_steps(source, steps, cfg)
        raw = [np.stack([tap.receive() for _ in range(steps)]) for tap in taps]  # [steps, N * n_l]
        counts = []
        for l, z in enumerate(raw):
            H, P = spec.widths[l], spec.positions[l + 1]
            window = z[l + 1:l + 1 + T].reshape(T, N, H, P)  # layer l lags the input by l + 1 steps
            counts.append(window.sum(0).transpose(0, 2, 1))  # [N, P, H]
        dtype = net.readout_weight.dtype
        count_t = [torch.as_tensor(cnt, dtype=dtype) for cnt in counts]
        v_mean = [np.asarray(nrn.v_sum.get()).reshape(N, spec.widths[l], spec.positions[l + 1]) / T
                  for l, nrn in enumerate(neurons)]
        ctx = learning_context(rule, [rates(cnt, T, params) for cnt in count_t], net.readout(count_t[-1], T),
                               target.to(dtype),
                               pre_activations=[torch.as_tensor(v, dtype=dtype) - (params.psi.v_th - params.lif.v_reset)
                                                for v in v_mean],
                               weights=list(net.hidden))
        signals = rule.learning_signals(ctx, rule_state)
        rule_state = rule.update_state(ctx, rule_state, lr)
        for l, (nrn, L) in enumerate(zip(neurons, signals)):
            ebar = float(np.asarray(nrn.ebar.get()).mean()) if scale == "expected" else 1.0
            c_l = float(eligibility_scale(scale).factor(ebar, active_fraction(count_t[l])))
            gain = layers[l].dv * params.gains[l]
            y2 = -lr * gain * gradient_factor(c_l, spec.fan_in[l]) * k ** -(depth - l) * L.detach().cpu().numpy()
            nrn.factor.set(y2.reshape(-1))  # [N, H, P] -> neuron j * P + p of copy b
        run_steps(source, 1, cfg)
        after = [np.asarray(syn.weights.get()) for syn in synapses]
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
    return LavaStep(grads, chip, list(signals), counts, ctx.output, rule_state)


__all__ = ["DT_RULE", "DW_RULE", "LavaStep", "SCALES", "three_factor_step"]
