r"""Trained networks on disk: weights, the readout used for scoring, and the run's full config.

One ``.npz`` file per run (written atomically)::

    hidden_<l>       W^l, the shapes of ``rate_models`` / the Norse back end ([H, K] shared, [P, H, K] untied)
    readout_weight   R [H, n_out]      logits = hbar . R + c,   hbar = position-averaged top-layer activity
    readout_bias     c [n_out]
    meta             JSON: config (RunConfig), backend, readout kind, test_error, package version

The readout is the one the run was scored with: the online delta-rule readout of supervised
rules (``R = beta / H``, ``c = 0``, kind ``delta``) or, for unsupervised rules, the converged
linear probe (kind ``probe``; :func:`spiking_rhm.metrics.fit_linear_probe`).  Rate and Norse
networks share weight shapes and the position-averaged readout, so a checkpoint of either back
end can be simulated by the spiking back ends and exported (``hardware.nir_graph``).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spiking_rhm import __version__
from spiking_rhm.atomic import atomic_write, writable_path
from spiking_rhm.errors import ConfigError

FORMAT = "spiking-rhm-checkpoint"
READOUT_KINDS = ("delta", "probe")


@dataclass(frozen=True)
class Checkpoint:
    """A trained network: ``hidden`` weights, affine readout ``(readout_weight, readout_bias)``, config."""

    config: Any  # spiking_rhm.config.RunConfig
    hidden: tuple[np.ndarray, ...]
    readout_weight: np.ndarray
    readout_bias: np.ndarray
    readout_kind: str
    backend: str
    test_error: float | None = None

    def __post_init__(self):
        if self.readout_kind not in READOUT_KINDS:
            raise ConfigError(f"readout kind must be one of {', '.join(READOUT_KINDS)}, got {self.readout_kind!r}")
        if self.readout_weight.ndim != 2 or self.readout_bias.shape != (self.readout_weight.shape[1],):
            raise ConfigError(f"readout weight [H, n_out] and bias [n_out] do not fit: "
                              f"{self.readout_weight.shape}, {self.readout_bias.shape}")

    def save(self, path: str | Path) -> Path:
        """Write the checkpoint to ``path`` (``.npz``) atomically."""
        meta = {"format": FORMAT, "version": __version__, "config": self.config.to_dict(), "backend": self.backend,
                "readout_kind": self.readout_kind, "test_error": self.test_error}
        arrays = {f"hidden_{l}": np.asarray(w) for l, w in enumerate(self.hidden)}
        arrays.update(readout_weight=np.asarray(self.readout_weight), readout_bias=np.asarray(self.readout_bias),
                      meta=np.array(json.dumps(meta)))
        return atomic_write(path, lambda handle: np.savez(handle, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> "Checkpoint":
        """Read a checkpoint; anything that is not one gives a :class:`ConfigError` naming the file."""
        from spiking_rhm.config import RunConfig, with_legacy_operating_point

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"checkpoint {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ConfigError(f"{path} is not a spiking-rhm checkpoint (.npz): {err}") from None
        try:
            meta = json.loads(str(arrays.pop("meta")))
            if meta.get("format") != FORMAT:
                raise KeyError("format")
            n_layers = sum(1 for k in arrays if k.startswith("hidden_"))
            hidden = tuple(arrays[f"hidden_{l}"] for l in range(n_layers))
            config = RunConfig.from_dict(with_legacy_operating_point(meta["config"]))
            return cls(config, hidden, arrays["readout_weight"],
                       arrays["readout_bias"], meta["readout_kind"], meta["backend"], meta.get("test_error"))
        except (KeyError, json.JSONDecodeError) as err:
            raise ConfigError(f"{path} is not a spiking-rhm checkpoint (missing {err})") from None


def delta_readout(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean-field readout ``y = hbar . beta / H`` as ``(R, c) = (beta / H, 0)``."""
    beta = np.asarray(beta, dtype=np.float64)
    return beta / beta.shape[0], np.zeros(beta.shape[1])


def make_checkpoint(cfg, hidden: Sequence, beta, probe=None, backend: str | None = None,
                    test_error: float | None = None) -> Checkpoint:
    """A checkpoint from a finished run: the probe's map when the run was scored by a probe, else the delta readout."""
    hidden = tuple(np.asarray(_numpy(w), dtype=np.float64) for w in hidden)
    if probe is not None:
        weight, bias, kind = np.asarray(probe.weight), np.asarray(probe.bias), "probe"
    else:
        (weight, bias), kind = delta_readout(_numpy(beta)), "delta"
    finite = test_error is not None and np.isfinite(test_error)
    return Checkpoint(cfg, hidden, weight, bias, kind, backend or cfg.backend, float(test_error) if finite else None)


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def check_checkpoint_path(path: str | Path | None) -> Path | None:
    """Fail before training when a checkpoint could not be written there (missing directory)."""
    return None if path is None else writable_path(path, ConfigError, "the checkpoint ")


__all__ = ["Checkpoint", "FORMAT", "READOUT_KINDS", "check_checkpoint_path", "delta_readout", "make_checkpoint"]
