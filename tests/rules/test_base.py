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
