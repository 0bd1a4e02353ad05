"""The outcome of triage for one report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .ruleset import ReferralTerms


@dataclass(frozen=True)
class FiredRule:
    id: str
    reason: str                          # English, composed as `compose` does
    # What the reason was made of, so that it can be said in another language:
    reason_id: str                       # the rule id, or the id of its `reasons_when` entry used
    unknown_answers: tuple[str, ...] = ()   # fields whose unknown-answer texts were added, in order
    sport_word: str | None = None        # the sport that counted as high-impact over the answer

    @staticmethod
    def compose(reason: str, said: Sequence[str]) -> str:
        """"<reason> (<said>; <said>)." - or the reason alone when nothing more is said."""
        if not said:
            return reason
        return f"{reason.rstrip('.')} ({'; '.join(said)})."

    def to_dict(self) -> dict:
        return {"id": self.id, "reason": self.reason, "reason_id": self.reason_id}


@dataclass(frozen=True)
class Decision:
    care_level: str                      # urgent | specialist | self_care
    fired: tuple[FiredRule, ...]         # rule-file order
    likely_source: str                   # joint | soft_tissue | mixed
    possible_causes: tuple[str, ...]
    notes: tuple[str, ...]
    advice: tuple[str, ...]
    rules_version: str
    referral: ReferralTerms | None       # None when no consult is needed
    advice_ids: tuple[str, ...]          # parallel to `advice`: each line's id in the rule file
    safety_netting: tuple[str, ...]      # the advice ids that are safety-netting, in advice order

    @property
    def fired_ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self.fired)

    def to_dict(self) -> dict:
        """JSON-ready; `decided_at` is added by whoever records the decision."""
        return {
            "care_level": self.care_level,
            "rules_version": self.rules_version,
            "fired": [rule.to_dict() for rule in self.fired],
            "likely_source": self.likely_source,
            "possible_causes": list(self.possible_causes),
            "notes": list(self.notes),
            "advice": list(self.advice),
            "advice_ids": list(self.advice_ids),
            "safety_netting": list(self.safety_netting),
            "referral": self.referral.to_dict() if self.referral else None,
        }
