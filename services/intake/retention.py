"""Intake's retention rules (pure): when a report's case is closed, and what of its patient
is left once the case has been closed longer than the retention period.

Closed is what the kiosk is shown as `closed` (status_view.derive_status, from the contract):
a self-care decision with no referral, or a referral cancelled or completed. Intake learns
it from events; the moment it learnt it is stored as `reports.closed_at` (migration 002,
set by a trigger from the same rule, which tests/integration/test_retention.py holds to
this one). A case is final once closed: self care leads to no referral, and a cancelled or
completed referral changes no more.

Once due, a report keeps its clinical answers and its status view (the record, and what
its kiosk may still ask about) and loses every identifying field of `patient`: names,
birth date, phone, email, contact consent; the MRN is replaced by a keyed pseudonym
(services/common/retention.py). The body hash (a SHA-256 of the whole body, names
included, kept to recognise a kiosk's retry) goes too: a retry that late is a 409.
"""
from __future__ import annotations

from datetime import datetime

from services.common.retention import RetentionPolicy, mrn_pseudonym

from .status_view import REFERRAL_STATUS_TO_REPORT_STATUS, derive_status

# Referral statuses that close the report's case: cancelled, completed.
CLOSING_REFERRAL_STATUSES = tuple(sorted(s for s, shown in REFERRAL_STATUS_TO_REPORT_STATUS.items()
                                         if shown == "closed"))
PSEUDONYMISED_BODY_HASH = "pseudonymised"


def is_case_closed(care_level: str | None, referral_status: str | None) -> bool:
    return derive_status(care_level, referral_status) == "closed"


def is_due(policy: RetentionPolicy, *, care_level: str | None, referral_status: str | None,
           closed_at: datetime | None, pseudonymised_at: datetime | None, now: datetime) -> bool:
    """Whether this report's identity is to be pseudonymised now: its case is closed, it
    has been for the retention period, and it has not been pseudonymised yet."""
    return (pseudonymised_at is None and is_case_closed(care_level, referral_status)
            and policy.is_due(closed_at, now))


def pseudonymised_patient(patient: dict, key: bytes | None) -> dict:
    """What is left of a report's `patient`: the MRN's pseudonym (None without a key)."""
    mrn = patient.get("mrn")
    pseudonym = mrn_pseudonym(key, mrn) if isinstance(mrn, str) else None
    return {"mrn_pseudonym": pseudonym if pseudonym is not None else patient.get("mrn_pseudonym")}
