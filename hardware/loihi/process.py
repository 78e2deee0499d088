r"""Lava Process of the three-factor learning neuron (its ProcessModels are in :mod:`.models`).

``ThreeFactorLIF`` is Lava's LIF (``u = (1 - du) u + a``, ``v = (1 - dv) v + u + bias``, spike if
``v > vth``, ``v = 0`` on spike) that also drives the post-synaptic factors of a
``LearningSparse`` synapse with a ``Loihi3FLearningRule`` (Loihi 2's neuron-computed traces):

* ``y1 = y1_scale psi(v)`` during its plastic window ``plastic_start <= t < plastic_stop`` (else 0),
  ``psi = 1 / (1 + psi_beta |v - psi_vth|)^2`` of the pre-reset potential (the Norse surrogate);
* ``y2 = factor``: the learning signal, a Var the host sets when it arrives;
* ``y3 = 1 - tag_decay``: the decay rate of the eligibility tag;

and accumulates, over its plastic window, the expected eligibility ``ebar`` (the Norse ``expected``
scale: ``ebar <- k ebar + (1-k) psi (1 - pre_decay^(n+1))``) and the sum of its potentials ``v_sum``.
Lava decays neuron-computed traces by ``exp(-1/65535)`` per epoch; the float model sends ``y / that``.

The fixed-point model (Loihi integers, :mod:`hardware.loihi.fixed_learning`) sends the 7-bit
``y1 = round(127 psi)`` of the real potential ``v_scale v``, ``y2 = factor`` (an integer) and
``y3`` (an integer), and no back-propagating spikes (the rule does not use them).
"""

from __future__ import annotations

from hardware import lava_shim

lava_shim.install()  # before the first lava import (Python 3.11)

from lava.magma.core.process.neuron import LearningNeuronProcess
from lava.magma.core.process.variable import Var
from lava.proc.lif.process import LIF


class ThreeFactorLIF(LearningNeuronProcess, LIF):
    """LIF neuron that sends ``psi`` (eligibility factor), the learning signal and the tag decay."""

    def __init__(self, *, shape: tuple[int, ...], learning_rule, psi_vth: float, psi_beta: float,
                 plastic_start: int, plastic_stop: int, y1_scale: float, tag_decay: float, pre_decay: float,
                 v_scale: float = 1.0, y3: int = 0, **lif_params) -> None:
        super().__init__(shape=shape, learning_rule=learning_rule, **lif_params)
        self.factor = Var(shape=shape, init=0.0)
        self.ebar = Var(shape=shape, init=0.0)
        self.v_sum = Var(shape=shape, init=0.0)
        self.psi_vth = Var(shape=(1,), init=psi_vth)
        self.psi_beta = Var(shape=(1,), init=psi_beta)
        self.plastic_start = Var(shape=(1,), init=plastic_start)
        self.plastic_stop = Var(shape=(1,), init=plastic_stop)
        self.y1_scale = Var(shape=(1,), init=y1_scale)
        self.tag_decay = Var(shape=(1,), init=tag_decay)
        self.pre_decay = Var(shape=(1,), init=pre_decay)
        self.v_scale = Var(shape=(1,), init=v_scale)
        self.y3 = Var(shape=(1,), init=y3)
