"""Reading the language an event says a report was filled in (issue 18).

Not a clinical answer: a language a service does not speak is read as English and logged,
never dead-lettered, so that no decision or referral waits on it. Triage and referral read it
so; intake too, for the texts a decision brings (services/intake/decision_texts.py).
"""
from __future__ import annotations

import logging

from .report_vocabulary import DEFAULT_LANGUAGE, REPORT_LANGUAGES


def read_language(value: object, *, log: logging.Logger, about: str, report_id: object, then: str) -> str:
    """`value` when it is one of REPORT_LANGUAGES, else English with a warning
    "<about> <report_id>: unsupported language (<type>), <then>" - the value's type, never the
    value: whatever a producer put there stays out of the logs."""
    if value in REPORT_LANGUAGES:
        return value
    log.warning("%s %s: unsupported language (%s), %s", about, report_id, type(value).__name__, then)
    return DEFAULT_LANGUAGE
