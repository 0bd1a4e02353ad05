"""status_view: what a kiosk sees of a report, from the facts the intake worker recorded.

Pure functions; the facts may have been learnt in any order, so the status depends only
on which facts are known, never on how they arrived."""
from __future__ import annotations

import itertools

import pytest

from services.intake.status_view import REPORT_STATUSES, derive_status, referral_view

CARE_LEVELS = [None, "urgent", "specialist", "self_care"]
REFERRAL_STATUSES = [None, "booked", "waitlisted", "cancelled", "completed"]


@pytest.mark.parametrize("care_level, referral_status, expected", [
    (None, None, "received"),
    ("urgent", None, "triaged"),
    ("specialist", None, "triaged"),
    ("self_care", None, "closed"),
    ("urgent", "booked", "referred"),
    ("specialist", "waitlisted", "waitlisted"),
    ("urgent", "cancelled", "closed"),
    ("specialist", "completed", "closed"),
    # A referral event that overtook its decision: the referral already tells.
    (None, "booked", "referred"),
    (None, "waitlisted", "waitlisted"),
    (None, "cancelled", "closed"),
])
def test_the_contracts_table(care_level, referral_status, expected):
    assert derive_status(care_level, referral_status) == expected


@pytest.mark.parametrize("care_level, referral_status", list(itertools.product(CARE_LEVELS, REFERRAL_STATUSES)))
def test_every_combination_is_one_of_the_contracts_statuses(care_level, referral_status):
    assert derive_status(care_level, referral_status) in REPORT_STATUSES


@pytest.mark.parametrize("referral_status", REFERRAL_STATUSES[1:])
def test_the_referral_decides_whatever_the_decision_said(referral_status):
    assert len({derive_status(level, referral_status) for level in CARE_LEVELS}) == 1


def test_the_statuses_are_the_contracts():
    assert REPORT_STATUSES == ("received", "triaged", "referred", "waitlisted", "closed")


def test_no_referral_yet():
    assert referral_view(None) is None
    assert referral_view({}) is None


def test_the_referral_part_shows_only_the_contracts_fields():
    appointment = {"slot_id": "s", "start": "2026-11-27T09:00:00+00:00", "end": "2026-11-27T09:30:00+00:00",
                   "provider": "Dr. Rui Costa", "location": "Clinic North"}
    snapshot = {"referral_id": "r", "report_id": "a", "report_ids": ["a", "b"], "care_level": "urgent",
                "priority": "urgent", "status": "booked", "sequence": 4, "created_at": "x",
                "window_ends_at": "y", "appointment": appointment}
    assert referral_view(snapshot) == {"referral_id": "r", "priority": "urgent", "status": "booked",
                                       "appointment": appointment}


def test_a_waitlisted_referral_has_no_appointment():
    snapshot = {"referral_id": "r", "priority": "routine", "status": "waitlisted", "appointment": None}
    assert referral_view(snapshot)["appointment"] is None
