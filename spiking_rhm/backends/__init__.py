"""Spiking back ends.  Each sub-package exposes ``train.py::train_<name>(cfg, progress=False) -> metrics``.

* :mod:`spiking_rhm.backends.norse` -- LIF hierarchy on Norse's functional API with
  three-factor eligibility traces (CPU and CUDA, plain PyTorch).

Back ends are imported lazily by :mod:`spiking_rhm.api`; importing this package imports none.
"""
