"""spiking-rhm: which local plasticity rules learn the Random Hierarchy Model, rate and spiking.

``import spiking_rhm`` is light: it imports numpy and torch only (never brian2 or lava).
"""

__version__ = "0.1.0"

from spiking_rhm.rhm import RHM, RHMParams, Sample  # noqa: E402

__all__ = ["RHM", "RHMParams", "Sample", "__version__"]
