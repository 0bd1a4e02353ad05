"""Parsing FHIR search parameters (services/referral/fhir/search.py) and turning the
service's error shape into OperationOutcome (outcome.py, errors.as_outcome). Pure."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from services.referral.fhir.errors import as_outcome
from services.referral.fhir.ids import MRN_SYSTEM
from services.referral.fhir.outcome import operation_outcome
from services.referral.fhir.search import (NO_MATCH, DateBound, SearchError, parse_date, parse_search,
                                           prefers_lenient)

UID = "11111111-1111-4111-8111-111111111111"


def at(*parts, **kw) -> datetime:
    return datetime(*parts, tzinfo=UTC, **kw)


@pytest.mark.parametrize(("value", "bounds"), [
    ("2026", ((">=", at(2026, 1, 1)), ("<", at(2027, 1, 1)))),
    ("2026-02", ((">=", at(2026, 2, 1)), ("<", at(2026, 3, 1)))),
    ("2026-12", ((">=", at(2026, 12, 1)), ("<", at(2027, 1, 1)))),
    ("eq2026-12-01", ((">=", at(2026, 12, 1)), ("<", at(2026, 12, 2)))),
    ("ge2026-12-01", ((">=", at(2026, 12, 1)),)),
    ("gt2026-12-01", ((">=", at(2026, 12, 2)),)),
    ("le2026-12-01", (("<", at(2026, 12, 2)),)),
    ("lt2026-12-01", (("<", at(2026, 12, 1)),)),
    ("2026-12-01T10:00Z", ((">=", at(2026, 12, 1, 10)), ("<", at(2026, 12, 1, 10, 1)))),
    ("gt2026-12-01T10:00:05+01:00", ((">=", at(2026, 12, 1, 9, 0, 6)),)),
    ("lt2026-12-01T10:00:05.25Z", (("<", at(2026, 12, 1, 10, 0, 5, microsecond=250000)),)),
])
def test_dates_are_ranges_as_precise_as_written(value, bounds):
    assert parse_date("date", value) == tuple(DateBound(op, when) for op, when in bounds)


@pytest.mark.parametrize(("value", "code"), [("2026-12-01T10:00", "invalid"), ("yesterday", "invalid"),
                                             ("2026-02-30", "invalid"), ("ne2026", "not-supported"),
                                             ("ap2026", "not-supported"), ("2026-12-01T25:00Z", "invalid")])
def test_bad_dates_name_the_parameter(value, code):
    with pytest.raises(SearchError) as error:
        parse_date("date", value)
    assert (error.value.parameter, error.value.code) == ("date", code)


def test_tokens_references_and_identifiers():
    search = parse_search("ServiceRequest", [("status", "http://hl7.org/fhir/request-status|active"),
                                             ("subject", f"https://x/fhir/R4/Patient/{UID}"),
                                             ("subject:Patient.identifier", f"{MRN_SYSTEM}|MRN-1")], lenient=False)
    assert search.one("status") == {"booked", "waitlisted"}
    assert search.one("patient") == UID and search.one("patient.identifier") == "MRN-1"
    assert not search.matches_nothing
    for other in ([("status", "urn:x|active")], [("patient.identifier", "urn:x|MRN-1")],
                  [("patient.identifier", "|MRN-1")], [("patient", "Patient/not-ours")]):
        assert parse_search("ServiceRequest", other, lenient=False).matches_nothing, other
    assert parse_search("Slot", [("status", "free")], lenient=False).one("status") is False
    assert NO_MATCH in parse_search("Slot", [("schedule", "x")], lenient=False).criteria["schedule"]


def test_count_cursor_and_the_self_links_parameters():
    search = parse_search("Slot", [("status", "free"), ("_count", "7"), ("_cursor", "abc"), ("foo", "1")],
                          lenient=True)
    assert (search.count, search.cursor) == (7, "abc")
    assert search.applied == [("status", "free"), ("_count", "7")]  # no unknown, no cursor


@pytest.mark.parametrize(("args", "parameter"), [
    ([("foo", "1")], "foo"), ([("_count", "0")], "_count"), ([("_count", "1"), ("_count", "2")], "_count"),
    ([("status", "free"), ("status", "busy")], "status"), ([("schedule", "Practitioner/1")], "schedule"),
    ([("status", "")], "status"), ([("_format", "xml")], "_format"),
])
def test_refused(args, parameter):
    with pytest.raises(SearchError) as error:
        parse_search("Slot", args, lenient=False)
    assert error.value.parameter == parameter


def test_start_may_repeat_and_all_must_hold():
    search = parse_search("Slot", [("start", "ge2026-12-01"), ("start", "lt2026-12-02")], lenient=False)
    assert search.bounds("start") == [DateBound(">=", at(2026, 12, 1)), DateBound("<", at(2026, 12, 2))]


@pytest.mark.parametrize(("header", "lenient"), [(None, False), ("handling=strict", False),
                                                 ("handling=lenient", True), ("return=minimal, handling=lenient", True),
                                                 ("handling = lenient", True), ("handling=lenientish", False)])
def test_prefer_header(header, lenient):
    assert prefers_lenient(header) is lenient


def test_error_shape_to_operation_outcome():
    body = json.dumps({"error": {"code": "not_supported", "message": "Unknown foo.",
                                 "fields": [{"field": "foo", "message": "Unknown foo."}]}}).encode()
    outcome = json.loads(as_outcome(400, body))
    OperationOutcome.model_validate(outcome)
    [issue] = outcome["issue"]
    assert (issue["code"], issue["location"], issue["diagnostics"]) == ("not-supported", ["http.foo"], "Unknown foo.")
    assert json.loads(as_outcome(503, b'{"error": {"code": "audit_unavailable", "message": "x"}}'))[
        "issue"][0]["code"] == "transient"
    assert json.loads(as_outcome(500, b"<html>oops</html>"))["issue"][0] == {
        "severity": "fatal", "code": "exception", "diagnostics": "HTTP 500"}
    already = json.dumps(operation_outcome(404, "not_found", "No such Slot.")).encode()
    assert as_outcome(404, already) is None  # left as it is
