"""A validated rule file, ready for the engine. Built only by the loader."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

from .conditions import Condition


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    condition: Condition | None   # None: the fallback rule (`when: otherwise`)
    reason: str                   # settings already filled in
    source: tuple[str, ...]

    @property
    def is_fallback(self) -> bool:
        return self.condition is None


@dataclass(frozen=True)
class PossibleCause:
    id: str
    name: str
    condition: Condition
    source: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    id: str
    text: str
    condition: Condition
    source: tuple[str, ...]


@dataclass(frozen=True)
class ReferralTerms:
    """What a care level asks of the referral service."""

    priority: str       # "urgent" | "routine"
    within_days: int    # earliest free slot within this many days

    def to_dict(self) -> dict:
        return {"priority": self.priority, "within_days": self.within_days}


@dataclass(frozen=True, eq=False)
class RuleSet:
    version: str
    settings: Mapping[str, int]
    rules: tuple[Rule, ...]                       # file order, fallback included
    unknown_answer_texts: Mapping[str, str]       # field -> "not sure whether ...: treated as yes, ..."
    joint_locations: Condition
    soft_tissue_locations: Condition
    possible_causes: tuple[PossibleCause, ...]
    notes: tuple[Note, ...]
    advice_by_level: Mapping[str, tuple[str, ...]]
    consult_options: tuple[str, ...]
    referral_by_level: Mapping[str, ReferralTerms]
    content: Mapping = field(repr=False)          # the file as parsed
    # derived from `rules` once, so the engine does not sort them per decision
    conditional_rules: tuple[Rule, ...] = field(init=False, repr=False)
    fallback: Rule = field(init=False, repr=False)   # `when: otherwise`: applies when nothing else fires

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditional_rules", tuple(rule for rule in self.rules if not rule.is_fallback))
        object.__setattr__(self, "fallback", next(rule for rule in self.rules if rule.is_fallback))

    def advice_for(self, level: str) -> tuple[str, ...]:
        return self.advice_by_level.get(level, ())

    def referral_for(self, level: str) -> ReferralTerms | None:
        return self.referral_by_level.get(level)

    def as_dict(self) -> dict:
        """The rule file content (JSON-ready), a copy the caller may keep."""
        return copy.deepcopy(dict(self.content))
