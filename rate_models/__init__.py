"""PyTorch rate networks of the RHM literature and the rate back end of every rule.

``networks``: pure functional CNN / LCN / FCN (``forward(params, x) -> (logits, activity)``)
and the rate eligibility (``explicit_update``); ``train``: ``train_rate(cfg)``.
Importing the package registers ``train_rate`` as the trainer of ``backend = "rate"``
(:func:`spiking_rhm.api.register_trainer`; installed, the package also declares it as an entry point).
"""

from spiking_rhm.api import register_trainer

from rate_models.networks import (
    Activity,
    NetParams,
    NetSpec,
    RateNetwork,
    explicit_update,
    forward,
    init_params,
    make_spec,
)

register_trainer("rate", "rate_models.train:train_rate")

__all__ = ["Activity", "NetParams", "NetSpec", "RateNetwork", "explicit_update", "forward", "init_params",
           "make_spec"]
