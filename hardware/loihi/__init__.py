"""Lava / Loihi 2 deployment of NIR graphs (``docs/hardware.md``).

``network`` and ``fixed_point`` import Lava only inside the functions that run it; ``process`` and
``models`` (the three-factor learning neuron) are Lava modules, imported by ``learning`` on demand.
"""
