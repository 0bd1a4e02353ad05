"""Recompute a stored decision from what it was made from: its input snapshot, its
`assessed_on` date (the "today" its pain duration was counted to), its rules version and
its language (the patient's texts are recomputed too, from the catalogues installed).

Only the rule file in force ships with the service, so a decision made under another
version cannot be replayed faithfully: that is refused, never approximated with the
rules of today.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

from services.common.report_vocabulary import DEFAULT_LANGUAGE

from .domain import RuleSet, decide
from .domain.patient_text import recorded
from .translations import Catalogues, load_catalogues

# The columns of triage.decisions that hold the engine's output (the recorded decision's keys
# minus `referral`, which is derived from the level and the rules, and not stored, and
# `language`, which is an input).
DECISION_FIELDS = ("care_level", "rules_version", "fired", "likely_source", "possible_causes", "notes",
                   "advice", "advice_ids", "safety_netting", "patient_text")


class ReplayRefused(Exception):
    """The rules the decision was made under are not available."""


def replay(stored_row: Mapping, rules: RuleSet, catalogues: Catalogues | None = None) -> dict:
    """The decision `rules` give for the stored row's input, recorded as the worker records
    it (with the patient's texts in the row's language); `rules` must be its version.
    `catalogues`: those the worker loads, when not given."""
    if stored_row["rules_version"] != rules.version:
        raise ReplayRefused(
            f"decision for report {stored_row.get('report_id', '?')} was made under rules version "
            f"{stored_row['rules_version']!r}, but only version {rules.version!r} is available: "
            "it cannot be replayed")
    catalogues = catalogues or _installed_catalogues()
    language = stored_row.get("language") or DEFAULT_LANGUAGE
    decision = decide(stored_row["input_snapshot"], rules, today=stored_row["assessed_on"])
    return recorded(decision, rules, language, catalogues.lookup(language))


@functools.cache
def _installed_catalogues() -> Catalogues:
    # loaded once, on the first replay (never at import): `clinic rules replay` replays row by row
    return load_catalogues()


def differences(stored_row: Mapping, replayed: Mapping) -> dict[str, tuple]:
    """Field -> (stored, replayed) for every stored field the replay does not reproduce."""
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
