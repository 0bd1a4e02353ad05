"""The outcome of triage for one report."""

from __future__ import annotations

from dataclasses import dataclass

from .ruleset import ReferralTerms


@dataclass(frozen=True)
class FiredRule:
    id: str
    reason: str

    def to_dict(self) -> dict:
        return {"id": self.id, "reason": self.reason}


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
            "referral": self.referral.to_dict() if self.referral else None,
        }
