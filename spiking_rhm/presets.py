r"""Protocol presets: named sets of run settings a sweep can list among its rules.

A sweep's ``rules`` may name a preset (``rules = ["bp", "reference-bp"]``): its runs train the preset's
rule with the preset's settings over the sweep's shared ones, then the sweep's ``overrides.<preset>``;
the record's ``config.preset`` names it, and curves are labelled by it.  A preset chooses its own
protocol, so it drops the sweep's selection grid and validation split unless its overrides set them.

``reference-bp``: backprop with the protocol of the RHM authors' code (Cagnetta et al., ``main.py``;
``/work/shared/reference/science.md`` §2.2): width 64 (the code's default), SGD with momentum 0.9 and
``lr = 0.1 x width`` for every parameter, batch 128, 250 epochs, CosineAnnealingLR with ``T_max = 0.8``
of the run (the rate rises again at the end), and stop once the train cross-entropy is below 0.01.
Differences (docs/deviations.md): the stop is checked every epoch (the code: every 10), the schedule is
per step (the code: per epoch), and the code's weight decay ``5e-4 x mean(W^2)`` per tensor (a decay of
``1e-3 / numel`` per weight, ~1e-8 at width 64) is left out.
"""

from __future__ import annotations

from typing import Any, Mapping

from spiking_rhm.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "reference-bp": {
        "rule": "bp",
        "net": {"width": 64},
        "optim": {"lr": 0.1, "momentum": 0.9, "batch_size": 128, "epochs": 250, "schedule": "cosine",
                  "cosine_period": 0.8, "stop_train_loss": 0.01, "weight_decay": 0.0, "warmup": 0.0,
                  "clip": None, "min_steps": 0, "validation": 0.0, "stop_train_error": None, "plateau": 0},
    },
}


def is_preset(name: str) -> bool:
    return name in PRESETS


def preset_run(name: str, shared: Mapping[str, Any], merge) -> dict:
    """The run sections of preset ``name`` over the ``shared`` ones (``merge``: a deep merge), with
    ``rule`` and ``preset`` set and the grid dropped."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    sections = {k: v for k, v in preset.items() if k != "rule"}
    run = merge(dict(shared), sections)
    run["grid"] = {}
    return {**run, "rule": preset["rule"], "preset": name}


__all__ = ["PRESETS", "is_preset", "preset_run"]
