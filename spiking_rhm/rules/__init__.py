"""Learning rules as learning signal x eligibility (see :mod:`spiking_rhm.rules.base`)."""

from spiking_rhm.rules.base import (
    LearningContext,
    Rule,
    RuleState,
    available_rules,
    get_rule,
    register,
    rule_class,
)

__all__ = ["LearningContext", "Rule", "RuleState", "available_rules", "get_rule", "register", "rule_class"]
