"""PyTorch rate networks of the RHM literature and the rate back end of every rule.

``networks``: pure functional CNN / LCN / FCN (``forward(params, x) -> (logits, activity)``)
and the rate eligibility (``explicit_update``); ``train``: ``train_rate(cfg)``.
"""

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

__all__ = ["Activity", "NetParams", "NetSpec", "RateNetwork", "explicit_update", "forward", "init_params",
           "make_spec"]
