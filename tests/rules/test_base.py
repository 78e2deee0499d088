"""Declared rule capabilities agree with what the rules do."""

import pytest

from spiking_rhm.rules.base import Capabilities, SignalSite, available_rules, get_rule
from spiking_rhm.rules.branch import BranchRule


@pytest.mark.parametrize("name", list(available_rules()))
def test_capabilities_match_the_rule(name):
    rule = get_rule(name)
    caps = rule.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.branch == isinstance(rule, BranchRule)
    assert caps.second_view == (rule.positive_view_levels(2) is not None)
    assert set(caps.non_local) <= caps.needs and caps.needs == rule.needs
    assert "pairs" in rule.data_use(2)


def test_second_view_follows_the_pair_mode():
    assert get_rule("clapp", pairs="resample").capabilities.second_view
    assert not get_rule("clapp", pairs="sibling").capabilities.second_view
    assert get_rule("dfa").capabilities == Capabilities(SignalSite.SOMA, get_rule("dfa").needs, False)
    assert get_rule("bp").capabilities.non_local == ["bp_signals"]


TYPED = {"dfa": "FeedbackState", "dkp": "FeedbackState", "clapp": "SSLState", "vicreg": "SSLState",
         "sibling-cca": "BranchState", "bp": "NoState", "random-features": "NoState"}


@pytest.mark.parametrize("name", list(TYPED))
def test_rule_state_is_typed_and_a_pytree(name):
    """A rule's state is its NamedTuple; its tensors flatten and rebuild as a pytree (stacked runs, vmap), and
    fields read by name as ``state["B"]`` too (code written against the former dict state)."""
    import torch
    from torch.utils._pytree import tree_flatten, tree_unflatten

    rule = get_rule(name)
    taps = {"taps": 2} if rule.capabilities.branch else {}
    state = rule.init_state([(16, 4), (16, 2)], 3, torch.Generator().manual_seed(0), **taps)
    assert type(state).__name__ == TYPED[name] and isinstance(state, tuple) and hasattr(state, "_fields")
    for field in state._fields:
        assert state[field] is getattr(state, field)
    leaves, tree = tree_flatten(state)
    rebuilt = tree_unflatten(leaves, tree)
    assert type(rebuilt) is type(state) and tree_flatten(rebuilt)[1] == tree
    assert all(a is b for a, b in zip(tree_flatten(rebuilt)[0], leaves))
