"""What a kiosk shows of a triage decision, in the report's language (issue 18).

Triage writes the patient's texts (advice and reasons) in the language the report was
filled in, beside the English ones it keeps as the clinical record, and gives each a stable
id. Intake only picks them: it never translates, and never matches one text to another.
A decision made before triage wrote them (no `patient_text`), or in a language this kiosk
does not speak, is shown in English.
"""
from __future__ import annotations

import logging

from services.common.languages import read_language
from services.common.report_vocabulary import DEFAULT_LANGUAGE

log = logging.getLogger(__name__)


def shown(decision: dict) -> tuple[list[str], dict]:
    """The advice lines to show (the status view's `advice`), and the outcome's detail: its
    language, each advice line with its id and whether it is safety-netting, each reason with
    its rule."""
    text = decision.get("patient_text")
    language = DEFAULT_LANGUAGE
    if text is not None:
        said = decision.get("language", DEFAULT_LANGUAGE)
        language = read_language(said, log=log, about="decision on report", report_id=decision.get("report_id"),
                                 then="its patient texts are shown in English")
        if language != said:
            text = None
    fired = decision.get("fired") or []
    advice = text["advice"] if text else decision["advice"]
    reasons = text["reasons"] if text else [rule["reason"] for rule in fired]
    ids = decision.get("advice_ids") or [None] * len(advice)
    netting = set(decision.get("safety_netting") or ())
    detail = {
        "language": language,
        "advice": [{"id": advice_id, "text": line, "safety_netting": advice_id in netting}
                   for advice_id, line in zip(ids, advice)],
        "reasons": [{"rule": rule["id"], "reason_id": rule.get("reason_id"), "text": reason}
                    for rule, reason in zip(fired, reasons)],
    }
    return advice, detail
