"""Recompute a stored decision from what it was made from: its input snapshot, its
`assessed_on` date (the "today" its pain duration was counted to) and its rules version.

Only the rule file in force ships with the service, so a decision made under another
version cannot be replayed faithfully: that is refused, never approximated with the
rules of today.
"""
from __future__ import annotations

from collections.abc import Mapping

from .domain import Decision, RuleSet, decide

# The columns of triage.decisions that hold the engine's output (Decision.to_dict() keys
# minus `referral`, which is derived from the level and the rules, and not stored).
DECISION_FIELDS = ("care_level", "rules_version", "fired", "likely_source", "possible_causes", "notes",
                   "advice")


class ReplayRefused(Exception):
    """The rules the decision was made under are not available."""


def replay(stored_row: Mapping, rules: RuleSet) -> Decision:
    """The decision `rules` give for the stored row's input; `rules` must be its version."""
    if stored_row["rules_version"] != rules.version:
        raise ReplayRefused(
            f"decision for report {stored_row.get('report_id', '?')} was made under rules version "
            f"{stored_row['rules_version']!r}, but only version {rules.version!r} is available: "
            "it cannot be replayed")
    return decide(stored_row["input_snapshot"], rules, today=stored_row["assessed_on"])


def differences(stored_row: Mapping, decision: Decision) -> dict[str, tuple]:
    """Field -> (stored, replayed) for every stored field the replay does not reproduce."""
    replayed = decision.to_dict()
    return {name: (stored_row[name], replayed[name]) for name in DECISION_FIELDS
            if stored_row[name] != replayed[name]}


def render(rules_version: str, reproduced: int, other_versions: Mapping[str, int],
           differing: list[tuple[str, dict[str, tuple]]]) -> str:
    """What `clinic rules replay` prints: the counts, then each decision not reproduced."""
    checked = reproduced + len(differing)
    lines = [f"rules {rules_version}: {checked} stored decision(s) replayed, {reproduced} reproduced, "
             f"{len(differing)} not reproduced"]
    for version, count in sorted(other_versions.items()):
        lines.append(f"rules {version}: {count} stored decision(s) not replayed (that rule file is not installed)")
    for report_id, changed in differing:
        lines.append(f"report {report_id}:")
        lines += [f"  {field}: stored {stored!r}, replayed {replayed!r}"
                  for field, (stored, replayed) in sorted(changed.items())]
    return "\n".join(lines)
