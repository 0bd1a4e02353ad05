"""Triage domain: the care rules as data, and the pure engine that applies them.

    rules = load_rules(default_rules_path())      # once, at start; never at import
    decision = decide(report_body, rules, today_utc)
    decision.to_dict()                             # JSON-ready (add decided_at yourself)
"""

from .decision import Decision, FiredRule
from .engine import decide
from .errors import RuleFileError
from .rule_file import default_rules_path, load_rules
from .ruleset import ReferralTerms, RuleSet
from .vocabulary import CARE_LEVELS, seriousness

__all__ = [
    "CARE_LEVELS",
    "Decision",
    "FiredRule",
    "ReferralTerms",
    "RuleFileError",
    "RuleSet",
    "decide",
    "default_rules_path",
    "load_rules",
    "seriousness",
]
