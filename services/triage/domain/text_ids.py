"""The names of the rule file's patient-facing texts, as catalogues know them.

Each text a patient may read has a stable context (gettext's msgctxt) built from its id in
the rule file; with the English text itself (msgid) it is the key of its translation. A
changed English text then finds no translation and falls back to English: never a stale
translation of changed clinical advice.
"""

from __future__ import annotations

# Ids in the rule file for advice lines, reasons_when entries and consult options.
KEBAB_ID = r"[a-z][a-z0-9]*(-[a-z0-9]+)*"

SPORT_OVERRODE_ANSWER = "sport-overrode-answer"   # high_impact_sports.answer_overridden
CONSULT_LEAD_IN = "consult:lead-in"               # consult_may_offer.lead_in


def advice(advice_id: str) -> str:
    return f"advice:{advice_id}"


def reason(rule_id: str, variant_id: str | None = None) -> str:
    """A rule's own reason, or one of its `reasons_when` entries."""
    return f"reason:{rule_id}" if variant_id is None else f"reason:{rule_id}/{variant_id}"


def unknown_answer(field: str) -> str:
    return f"unknown:{field}"


def consult_option(option_id: str) -> str:
    return f"consult:option:{option_id}"
