"""Referral's retention rules (pure): when a referral's case is closed, and what of its
patient is left once it has been closed longer than the retention period.

A referral is closed when it is cancelled or completed. Both are final (no transition
leaves them, and a new report is linked only to an open referral), so the referral's last
change, `updated_at`, is when it closed. Open referrals keep everything schedulers and the
patient matching need, however old.

Once due, the referral keeps its history, reports, priority, slot and dates (the clinic's
record) and loses its patient's identity: the name becomes "(pseudonymised)", the birth
date is dropped, and the MRN, its compared form and the MRN copied with a possible-duplicate
flag become keyed pseudonyms (services/common/retention.py), so that a returning patient's
old referrals can still be found by whoever holds the key and their MRN. The history's
free-text reasons are the record too: they are kept as written. Of the patient messages
(issue 19), the phone to call back on is blanked, and so are schedulers' notes of reaching the
patient (free text written while phoning, likely to name or number them); what was told,
on which channel and when, stays (contact_store.forget_identity).
"""
from __future__ import annotations

from datetime import datetime

from services.common.retention import PSEUDONYMISED_NAME, RetentionPolicy, mrn_pseudonym

from .domain import OPEN_STATUSES
from .domain.model import STATUSES

CLOSED_STATUSES = tuple(sorted(STATUSES - OPEN_STATUSES))  # cancelled, completed
# The MRN's stand-in when the service has no pseudonym key (CLINIC_PSEUDONYM_KEY nor
# CLINIC_SECRET_KEY): dropped outright, the columns being NOT NULL.
REMOVED_MRN = "(removed)"


def is_due(policy: RetentionPolicy, *, status: str, updated_at: datetime, pseudonymised_at: datetime | None,
           now: datetime) -> bool:
    return pseudonymised_at is None and status in CLOSED_STATUSES and policy.is_due(updated_at, now)


def _pseudonym(key: bytes | None, mrn: str | None) -> str | None:
    if mrn is None:
        return None
    return mrn_pseudonym(key, mrn) or REMOVED_MRN


def pseudonymised_identity(*, mrn: str, duplicate_mrn: str | None, key: bytes | None) -> dict:
    """The new values of the referral's identity columns."""
    pseudonym = _pseudonym(key, mrn)
    return {"patient_mrn": pseudonym, "patient_mrn_key": pseudonym, "patient_display_name": PSEUDONYMISED_NAME,
            "patient_birth_date": None, "possible_duplicate_mrn": _pseudonym(key, duplicate_mrn)}
