"""A validated rule file, ready for the engine. Built only by the loader."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .conditions import Condition


@dataclass(frozen=True)
class ReasonVariant:
    """A `reasons_when` entry: its reason replaces the rule's when its condition (which may
    ask for a possible cause or a note) is met."""

    id: str
    condition: Condition
    reason: str                   # settings already filled in
    reads_sport_list: bool = False   # as Rule.reads_sport_list, for this entry's condition


@dataclass(frozen=True)
class Rule:
    id: str
    level: str
    condition: Condition | None   # None: the fallback rule (`when: otherwise`)
    reason: str                   # settings already filled in
    source: tuple[str, ...]
    # Other reasons: the first whose condition is met wins, else `reason`.
    reasons_when: tuple[ReasonVariant, ...] = ()
    clinician_review: bool = False   # a reading stronger than its source: a clinician must review it
    # Whether its condition can be met because the sport is on the high-impact list (then its
    # reason says so when the patient answered "not high-impact")
    reads_sport_list: bool = False

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
class AdviceLine:
    id: str                           # stable: its translations are found by it (text_ids.advice)
    text: str                         # settings already filled in
    levels: frozenset[str]
    when: Condition | None = None     # shown only when met (None: always)
    unless: Condition | None = None   # not shown when met
    clinician_review: bool = False    # no source sentence: our words, for a clinician to review
    safety_netting: bool = False      # what to watch for and when to come back (shown as such)


@dataclass(frozen=True)
class HighImpactSports:
    """The rule file's list of sports that count as high-impact whatever the answer."""

    condition: Condition             # OnList on activity.sport
    answer_overridden: str           # reason text; "{word}" is the entry found in the sport


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
    advice_lines: tuple[AdviceLine, ...]          # file order
    consult_options: tuple[str, ...]
    consult_line: str
    consult_levels: frozenset[str]
    referral_by_level: Mapping[str, ReferralTerms]
    content: Mapping = field(repr=False)          # the file as parsed
    high_impact_sports: HighImpactSports | None = None   # None: the file has no such list
    # What a patient may read, for catalogues: context (text_ids) -> the English text as
    # written, its {setting} placeholders not filled in; file order.
    texts: Mapping[str, str] = field(default_factory=dict, repr=False)
    consult_id: str = ""                          # the advice id of `consult_line`
    consult_option_ids: tuple[str, ...] = ()      # parallel to consult_options
    # derived from `rules` once, so the engine does not sort them per decision
    conditional_rules: tuple[Rule, ...] = field(init=False, repr=False)
    fallback: Rule = field(init=False, repr=False)   # `when: otherwise`: applies when nothing else fires
    consult_advice: AdviceLine = field(init=False, repr=False)   # the consult line, as advice_for ends with it

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditional_rules", tuple(rule for rule in self.rules if not rule.is_fallback))
        object.__setattr__(self, "fallback", next(rule for rule in self.rules if rule.is_fallback))
        object.__setattr__(self, "consult_advice", AdviceLine(self.consult_id, self.consult_line, self.consult_levels))

    def advice_for(self, level: str, listed: Callable[[Condition], bool] = lambda _condition: False,
                   ) -> tuple[AdviceLine, ...]:
        """The advice lines for `level`, in file order; `listed(condition)` says whether a
        line's `when`/`unless` condition is met for the decision at hand (the engine's facts).
        Urgent and specialist end with what the consult may offer (id `consult_id`)."""
        lines = tuple(line for line in self.advice_lines
                      if level in line.levels
                      and (line.when is None or listed(line.when))
                      and not (line.unless is not None and listed(line.unless)))
        if level in self.consult_levels:
            lines += (self.consult_advice,)
        return lines

    def referral_for(self, level: str) -> ReferralTerms | None:
        return self.referral_by_level.get(level)

    def as_dict(self) -> dict:
        """The rule file content (JSON-ready), a copy the caller may keep."""
        return copy.deepcopy(dict(self.content))
