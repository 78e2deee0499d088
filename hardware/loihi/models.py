"""ProcessModels of :class:`hardware.loihi.process.ThreeFactorLIF` (floating point and Loihi integers, CPU)."""

from __future__ import annotations

from hardware import lava_shim

lava_shim.install()  # before the first lava import (Python 3.11)

import numpy as np  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.neuron import LearningNeuronModelFixed, LearningNeuronModelFloat
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed

from hardware.loihi.fixed_learning import TRACE_MAX, quantise_psi

from hardware.loihi.process import ThreeFactorLIF  # noqa: E402

# Lava decays neuron-computed (Loihi3F) y traces by exp(-1/tau) with tau = 2**16 - 1 before the
# learning engine reads them; sending y / Y_DECAY makes the engine see y itself.
Y_DECAY = float(np.exp(-1.0 / np.iinfo(np.uint16).max))


class ThreeFactorVars:
    """The Vars both ProcessModels read the same way (the host-set factor and ``v_sum`` differ in type)."""

    ebar: np.ndarray = LavaPyType(np.ndarray, float)
    psi_vth: float = LavaPyType(float, float)
    psi_beta: float = LavaPyType(float, float)
    plastic_start: int = LavaPyType(int, int)
    plastic_stop: int = LavaPyType(int, int)
    y1_scale: float = LavaPyType(float, float)
    tag_decay: float = LavaPyType(float, float)
    pre_decay: float = LavaPyType(float, float)
    v_scale: float = LavaPyType(float, float)  # the fixed-point model's 1 / S
    y3: int = LavaPyType(int, int)  # the fixed-point model's integer y3


@implements(proc=ThreeFactorLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyThreeFactorLIFModelFloat(ThreeFactorVars, LearningNeuronModelFloat):
    """Float LIF dynamics of Lava's ``PyLifModelFloat`` plus the three factors of the module docstring."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)
    du: float = LavaPyType(float, float)
    dv: float = LavaPyType(float, float)
    vth: float = LavaPyType(float, float)
    factor: np.ndarray = LavaPyType(np.ndarray, float)
    v_sum: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        a = self.a_in.recv()
        self.u[:] = self.u * (1 - self.du) + a
        self.v[:] = self.v * (1 - self.dv) + self.u + self.bias_mant
        psi = 1.0 / (1.0 + self.psi_beta * np.abs(self.v - self.psi_vth)) ** 2
        plastic = self.plastic_start <= self.time_step < self.plastic_stop
        k = self.tag_decay
        if plastic:
            warm = 1.0 - self.pre_decay ** (self.time_step - self.plastic_start + 1)
            self.ebar[:] = k * self.ebar + (1 - k) * psi * warm
            self.v_sum[:] += self.v
        spikes = self.v > self.vth
        self.v[spikes] = 0.0
        self.s_out.send(spikes)
        self.s_out_bap.send(spikes)
        self.s_out_y1.send(psi * (self.y1_scale / Y_DECAY) if plastic else np.zeros_like(psi))
        self.s_out_y2.send(self.factor / Y_DECAY)
        self.s_out_y3.send(np.full_like(psi, (1 - k) / Y_DECAY))


@implements(proc=ThreeFactorLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyThreeFactorLIFModelFixed(ThreeFactorVars, LearningNeuronModelFixed, AbstractPyLifModelFixed):
    """Lava's bit-accurate LIF (``PyLifModelBitAcc``) plus the integer factors: ``y1 = round(127 psi)``
    of the pre-reset potential (real units ``v_scale v``) in the plastic window, ``y2 = factor``,
    ``y3``; no back-propagating spikes.  :class:`hardware.loihi.fixed_learning.BitApproxLayer` is the
    same neuron in numpy."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    factor: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    v_sum: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.effective_vth = 0

    def scale_threshold(self):
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        v = self.v.astype(np.int64)
        psi = 1.0 / (1.0 + self.psi_beta * np.abs(v * self.v_scale - self.psi_vth)) ** 2
        plastic = self.plastic_start <= self.time_step < self.plastic_stop
        y1 = quantise_psi(psi) if plastic else np.zeros_like(v)
        if plastic:
            k = self.tag_decay
            warm = 1.0 - self.pre_decay ** (self.time_step - self.plastic_start + 1)
            self.ebar[:] = k * self.ebar + (1 - k) * (y1 / TRACE_MAX) * warm
            self.v_sum[:] += v
        spikes = self.spiking_activation()
        self.reset_voltage(spike_vector=spikes)
        self.s_out.send(spikes)
        self.s_out_bap.send(np.zeros_like(spikes))
        self.s_out_y1.send(y1.astype(np.int32))
        self.s_out_y2.send(self.factor.astype(np.int32))
        self.s_out_y3.send(np.full(y1.shape, self.y3, dtype=np.int32))
