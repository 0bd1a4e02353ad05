"""The access audit's pure parts: the MRN key it stores is the referral service's, and
`clinic audit`'s table (newest first as given, lists counted, a note when the limit cut it)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.admin.audit import Entry, render
from services.common.audit import mrn_key
from services.referral.domain import mrn_key as referral_mrn_key


@pytest.mark.parametrize("mrn", ["MRN-0042", " mrn-0042 ", "ＭＲＮ－００４２", "Straße-7", "ǅ-1", "ﬁ-2", "\u212b-3", ""])
def test_the_audit_compares_mrns_as_the_referral_service_does(mrn):
    assert mrn_key(mrn) == referral_mrn_key(mrn)


def entry(**changes) -> Entry:
    fields = {"at": datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC), "staff_name": "dana", "staff_role": "scheduler",
              "action": "read", "record_type": "referral", "record_ids": ["3f0c6a9e-0000-4000-8000-000000000001"],
              "patient_mrns": ["MRN-0042"], "channel": "api", "background": False, "client": "10.0.0.7",
              "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              "endpoint": "GET /v1/referrals/<referral_id>"}
    return Entry(**{**fields, **changes})


def test_the_table():
    rows = [entry(at=datetime(2026, 12, 1, 10, 30, 5, tzinfo=timezone(timedelta(hours=1))), action="list",
                  record_ids=["a", "b", "c", "d"], patient_mrns=["M1", "M2", "M3", "M4"], channel="page",
                  background=True),
            entry()]
    lines = render(rows, limit=50).splitlines()
    assert lines[0].split() == ["at", "(UTC)", "staff", "action", "record", "patient", "MRN", "from", "trace", "id"]
    assert lines[1].split() == ["2026-12-01", "09:30:05", "dana", "(scheduler)", "list", "4", "referrals",
                                "M1,", "M2,", "M3", "+1", "10.0.0.7", "(page", "refresh)",
                                "4bf92f3577b34da6a3ce929d0e0e4736"]
    assert lines[2].split() == ["2026-12-01", "09:30:05", "dana", "(scheduler)", "read", "referral",
                                "3f0c6a9e-0000-4000-8000-000000000001", "MRN-0042", "10.0.0.7", "(api)",
                                "4bf92f3577b34da6a3ce929d0e0e4736"]
    assert len(lines) == 3


def test_a_decision_read_shows_no_mrn_and_a_cut_list_says_so():
    lines = render([entry(record_type="decision", patient_mrns=[], traceparent=None)], limit=1).splitlines()
    assert lines[1].split()[5:] == ["decision", "3f0c6a9e-0000-4000-8000-000000000001", "-", "10.0.0.7", "(api)",
                                    "-"]
    assert lines[2] == "(the newest 1; --limit N for more)"
    assert render([], limit=50) == "no audited access"
