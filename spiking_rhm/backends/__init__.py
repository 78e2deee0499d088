"""Spiking back ends.  Each sub-package exposes ``train.py::train_<name>(cfg, progress=False) -> metrics``.

* :mod:`spiking_rhm.backends.norse` -- LIF hierarchy on Norse's functional API with
  three-factor eligibility traces (CPU and CUDA, plain PyTorch).

Back ends are imported lazily by :mod:`spiking_rhm.api` (its trainer registry); importing this package
imports none.  Their weight updates come from :mod:`spiking_rhm.plasticity`, their training loop is
:mod:`spiking_rhm.training`.
"""
