"""Shared test configuration: deterministic torch, small thread count, back-end markers."""

import importlib.util

import pytest
import torch

import rate_models  # noqa: F401  (the test suite is a caller: it registers the rate back end's trainer)

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked for an optional back end that is not installed."""
    missing = {name for name in ("norse", "brian2", "lava") if importlib.util.find_spec(name) is None}
    for item in items:
        for name in missing:
            if name in item.keywords:
                item.add_marker(pytest.mark.skip(reason=f"{name} is not installed"))


@pytest.fixture
def gen():
    """A seeded torch generator."""
    return torch.Generator().manual_seed(1234)
