"""schemathesis hooks for tests/integration/test_openapi_fuzz.py, loaded by the `st` process
(SCHEMATHESIS_HOOKS=tests.fuzz_hooks), never imported by the test suite.

Only rules that depend on today's date (a date "not later than tomorrow", a slot "not in the
past", a birth date within 130 years) cannot be written in a JSON Schema. For *positive*
cases (schema-valid data, which the API must accept) `before_call` moves such dates into
today's window, as a real client would send them. Negative cases are sent as generated.
"""
from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

import schemathesis

# Each positive case's slots get hours of their own (a counter, not chance: two cases' slots
# for the one provider must never overlap, or the answer is a correct 422).
_next_hour = itertools.count()


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    if isinstance(case.query, dict):
        # A cursor is opaque: a client only ever sends one the list gave it (any other is a 422).
        case.query.pop("cursor", None)
    if not isinstance(case.body, (dict, list)):
        return
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    path = case.operation.path
    if path == "/v1/reports" and isinstance(case.body, dict):
        patient, pain = case.body.get("patient"), case.body.get("pain")
        if isinstance(patient, dict) and "birth_date" in patient:
            patient["birth_date"] = (today - timedelta(days=365 * 30)).isoformat()
        if isinstance(pain, dict) and "started_on" in pain:
            pain["started_on"] = (today - timedelta(days=3)).isoformat()
    if path.startswith("/v1/slots") and os.environ.get("FUZZ_PROVIDER_ID"):
        # A provider that exists (the test made it): any other id is a 422, "No such provider".
        for slot in case.body if isinstance(case.body, list) else [case.body]:
            if isinstance(slot, dict) and "provider_id" in slot:
                slot["provider_id"] = os.environ["FUZZ_PROVIDER_ID"]
    if path.endswith("/reschedule") and isinstance(case.body, dict) and os.environ.get("FUZZ_SLOT_ID"):
        # A slot that exists (the test made it): any other id is a 422, "No such slot"; once the
        # slot is booked, or the referral is closed, the answer is a 409, which the check accepts.
        case.body["slot_id"] = os.environ["FUZZ_SLOT_ID"]
    if path == "/v1/slots":
        slots = case.body if isinstance(case.body, list) else [case.body]
        first = now + timedelta(days=400)
        for slot in slots:
            if isinstance(slot, dict) and "start" in slot and "end" in slot:
                start = first + timedelta(hours=next(_next_hour))
                slot["start"], slot["end"] = start.isoformat(), (start + timedelta(minutes=30)).isoformat()
    elif path == "/v1/slots/bulk" and isinstance(case.body, dict) and "from" in case.body and "to" in case.body:
        day = today + timedelta(days=400 + 365 * 200 + next(_next_hour))  # far past the single slots
        case.body.update({"from": day.isoformat(), "to": day.isoformat(), "daily_start": "09:00",
                          "daily_end": "10:00", "weekdays": [1, 2, 3, 4, 5, 6, 7], "minutes": 30})
