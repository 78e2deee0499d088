"""ProcessModels of :class:`hardware.loihi.process.ThreeFactorLIF` (floating point, CPU)."""

from __future__ import annotations

from hardware import lava_shim

lava_shim.install()  # before the first lava import (Python 3.11)

import numpy as np  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.neuron import LearningNeuronModelFloat
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hardware.loihi.process import ThreeFactorLIF

# Lava decays neuron-computed (Loihi3F) y traces by exp(-1/tau) with tau = 2**16 - 1 before the
# learning engine reads them; sending y / Y_DECAY makes the engine see y itself.
Y_DECAY = float(np.exp(-1.0 / np.iinfo(np.uint16).max))


@implements(proc=ThreeFactorLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyThreeFactorLIFModelFloat(LearningNeuronModelFloat):
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
    ebar: np.ndarray = LavaPyType(np.ndarray, float)
    v_sum: np.ndarray = LavaPyType(np.ndarray, float)
    psi_vth: float = LavaPyType(float, float)
    psi_beta: float = LavaPyType(float, float)
    plastic_start: int = LavaPyType(int, int)
    plastic_stop: int = LavaPyType(int, int)
    y1_scale: float = LavaPyType(float, float)
    tag_decay: float = LavaPyType(float, float)
    pre_decay: float = LavaPyType(float, float)

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
