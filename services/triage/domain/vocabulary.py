"""The words the rule file may use: care levels, report fields, operators.

Fixed in code because the contract fixes them (care levels, report fields; the report's
words are shared with intake through services/common/report_vocabulary.py, which is pure);
everything clinical that may change lives in the rule file.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from services.common import report_vocabulary as report

# Most serious first: the position is the ranking ("the most serious level wins").
CARE_LEVELS: tuple[str, ...] = ("urgent", "specialist", "self_care")
_SERIOUSNESS = {level: len(CARE_LEVELS) - index for index, level in enumerate(CARE_LEVELS)}

REFERRAL_PRIORITIES: tuple[str, ...] = ("urgent", "routine")
LIKELY_SOURCES: tuple[str, ...] = ("joint", "soft_tissue", "mixed")

# The rule file's likely_source groups must share out exactly the report's locations.
LOCATIONS = report.PAIN_LOCATIONS


def seriousness(level: str) -> int:
    """Higher is more serious; used to pick the level that wins."""
    return _SERIOUSNESS[level]


class FieldKind(Enum):
    NUMBER = "number"      # compared with `op` against a setting
    YES_NO = "yes/no"      # true / false / null ("not sure")
    CHOICE = "choice"      # one value of a fixed list
    CHOICES = "list"       # several values of a fixed list
    TEXT = "free text"     # the patient's own words, read as words (case- and accent-folded)


@dataclass(frozen=True)
class Field:
    name: str               # dotted name used in the rule file
    kind: FieldKind
    section: str            # where the answer sits in the report body
    key: str
    values: tuple[str, ...] = ()   # CHOICE / CHOICES
    low: int | None = None         # NUMBER: smallest readable value
    high: int | None = None        # NUMBER: largest readable value
    min_items: int = 0             # CHOICES
    days_since: bool = False       # NUMBER derived from a calendar date


FIELDS: dict[str, Field] = {
    field.name: field
    for field in (
        Field("pain.severity", FieldKind.NUMBER, "pain", "severity",
              low=report.PAIN_SCALE_MIN, high=report.PAIN_SCALE_MAX),
        Field("pain.duration_days", FieldKind.NUMBER, "pain", "started_on", low=0, days_since=True),
        Field("pain.onset", FieldKind.CHOICE, "pain", "onset", values=report.ONSETS),
        Field("pain.side", FieldKind.CHOICE, "pain", "side", values=report.SIDES),
        Field("pain.locations", FieldKind.CHOICES, "pain", "locations", values=report.PAIN_LOCATIONS, min_items=1),
        Field("pain.direct_trauma", FieldKind.YES_NO, "pain", "direct_trauma"),
        Field("function.joint_locking", FieldKind.YES_NO, "function", "joint_locking"),
        Field("function.instability", FieldKind.YES_NO, "function", "instability"),
        Field("function.persistent_dysfunction", FieldKind.YES_NO, "function", "persistent_dysfunction"),
        Field("home_care.measures", FieldKind.CHOICES, "home_care", "measures", values=report.HOME_CARE_MEASURES),
        Field("home_care.days", FieldKind.NUMBER, "home_care", "days", low=0),
        Field("home_care.improving", FieldKind.CHOICE, "home_care", "improving", values=report.IMPROVING),
        Field("activity.high_impact", FieldKind.YES_NO, "activity", "high_impact"),
        Field("activity.sport", FieldKind.TEXT, "activity", "sport"),
    )
}

# Comparison operators for NUMBER fields. No equality: thresholds are bounds.
OPERATORS: dict[str, object] = {
    ">=": lambda value, threshold: value >= threshold,
    ">": lambda value, threshold: value > threshold,
    "<=": lambda value, threshold: value <= threshold,
    "<": lambda value, threshold: value < threshold,
}

# The only `is:` test: an unknown never lowers the level, so there is
# deliberately no plain `is: true` that would let "not sure" pass as no.
TRUE_OR_UNSURE = "true_or_unsure"

# Whole-condition keywords.
OTHERWISE = "otherwise"   # rules: fires only when no other rule fired
ALWAYS = "always"         # possible causes and notes: always listed
