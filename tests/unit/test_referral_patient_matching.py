"""Patient matching (contract, Referral service; issue 12 part 1), without I/O: the MRN as
compared, the rule that links a report to an open referral only when MRN *and* birth date
match, the flag otherwise, and the birth date's way through the events."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.envelope import new_event
from services.common.inbox import PoisonEvent
from services.intake import events as intake_events
from services.referral import events as referral_events
from services.referral.domain import (
    DEFAULT_WINDOWS,
    CreateReferral,
    PatientMatch,
    Referral,
    create_referral,
    is_same_patient,
    match_patient,
    mrn_key,
)
from services.triage import events as triage_events

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BORN = date(1991, 4, 2)
OTHER_BORN = date(1985, 7, 30)


def open_referral(n: int = 1, born: date | None = BORN, status: str = "waitlisted", **fields) -> Referral:
    return Referral(referral_id=f"00000000-0000-0000-0000-{n:012d}", patient_mrn="MRN-0042", priority="routine",
                    status=status, created_at=T0 + timedelta(minutes=n), window_ends_at=T0 + timedelta(days=14),
                    slot_id="slot-1" if status in ("booked", "completed") else None, report_ids=(f"report-{n}",),
                    patient_birth_date=born, **fields)


# -- the MRN as compared ---------------------------------------------------------------
@pytest.mark.parametrize("typed", [
    "MRN-0042", "mrn-0042", "  MRN-0042\t", "Mrn-0042 ",
    "ＭＲＮ－００４２",            # full-width letters, digits and hyphen (NFKC)
    "\u00a0MRN-0042\u3000",       # no-break and ideographic spaces around it
])
def test_mrns_that_differ_only_in_case_width_or_surrounding_space_compare_equal(typed):
    assert mrn_key(typed) == mrn_key("MRN-0042") == "mrn-0042"


@pytest.mark.parametrize("a, b", [("MRN-0042", "MRN-0043"), ("MRN-0042", "MRN 0042"), ("MRN-0042", "MRN-00042")])
def test_mrns_that_differ_in_content_do_not(a, b):
    assert mrn_key(a) != mrn_key(b)


@pytest.mark.parametrize("typed", ["Straße-1", "ＭＲＮ－ß", "ﬁ-9", "ΣΊΣΥΦΟΣ", "K\u212a-1"])
def test_the_key_is_case_folded_and_stable(typed):
    key = mrn_key(typed)
    assert mrn_key(key) == key  # the key of a key is itself
    assert mrn_key(typed.upper()) == mrn_key(typed.lower()) == key
    assert mrn_key("STRASSE-1") == mrn_key("Straße-1")


# -- the rule --------------------------------------------------------------------------
def test_the_same_mrn_and_birth_date_is_the_same_patient():
    mine = open_referral()
    assert match_patient([mine], BORN) == PatientMatch(same_patient=mine)


def test_no_open_referral_with_the_mrn_means_a_new_unflagged_referral():
    assert match_patient([], BORN) == PatientMatch()
    assert match_patient([], None) == PatientMatch()


def test_the_same_mrn_with_another_birth_date_is_never_linked_but_flagged():
    theirs = open_referral(born=OTHER_BORN)
    assert match_patient([theirs], BORN) == PatientMatch(possible_duplicate_of=theirs)


@pytest.mark.parametrize("report_born, referral_born", [(None, BORN), (BORN, None), (None, None)])
def test_an_unknown_birth_date_on_either_side_cannot_be_matched(report_born, referral_born):
    theirs = open_referral(born=referral_born)
    assert not is_same_patient(theirs, report_born)
    assert match_patient([theirs], report_born) == PatientMatch(possible_duplicate_of=theirs)


def test_among_several_open_referrals_with_the_mrn_the_matching_one_is_joined():
    first_other, mine, second_other = open_referral(1, OTHER_BORN), open_referral(2, BORN), open_referral(3, None)
    assert match_patient([second_other, mine, first_other], BORN).same_patient == mine


def test_with_no_match_the_oldest_open_referral_is_the_one_named():
    older, younger = open_referral(1, OTHER_BORN), open_referral(2, date(1970, 1, 1))
    assert match_patient([younger, older], BORN) == PatientMatch(possible_duplicate_of=older)


def test_closed_referrals_are_never_candidates():
    cancelled = open_referral(1, BORN, status="cancelled")
    completed = open_referral(2, OTHER_BORN, status="completed")
    assert match_patient([cancelled, completed], BORN) == PatientMatch()


def test_a_flagged_referral_names_the_other_by_id_only_and_says_why_without_names():
    theirs = open_referral(7, OTHER_BORN)
    plan = CreateReferral("report-new", "routine", T0, T0 + timedelta(days=14))
    change = create_referral(plan, referral_id="r-new", patient_mrn="mrn-0042 ", free_slots=[],
                             patient_birth_date=BORN, possible_duplicate_of=theirs)
    referral = change.referral
    assert (referral.possible_duplicate_of, referral.possible_duplicate_mrn) == (theirs.referral_id, "MRN-0042")
    assert (referral.patient_birth_date, referral.patient_mrn) == (BORN, "mrn-0042 ")  # the MRN as typed
    assert referral.status == "waitlisted" and referral.report_ids == ("report-new",)
    reason = change.history[0].reason
    assert f"possible duplicate of referral {theirs.referral_id}" in reason and "another birth date" in reason


def test_an_unflagged_referral_says_nothing_of_duplicates():
    change = create_referral(CreateReferral("r", "urgent", T0, T0 + timedelta(days=2)), referral_id="x",
                             patient_mrn="M", free_slots=[], patient_birth_date=None)
    assert change.referral.possible_duplicate_of is None and "duplicate" not in change.history[0].reason


def test_a_referral_cannot_be_flagged_against_itself():
    with pytest.raises(ValueError, match="itself"):
        open_referral(1, possible_duplicate_of="00000000-0000-0000-0000-000000000001", possible_duplicate_mrn="M")
    with pytest.raises(ValueError, match="both"):
        open_referral(1, possible_duplicate_of="00000000-0000-0000-0000-000000000002")


# -- the birth date through the events -------------------------------------------------
def test_intake_sends_the_birth_date_and_nothing_more_of_the_patient_than_before():
    patient = {"mrn": "MRN-0042", "given_name": "Ana", "family_name": "Silva", "birth_date": "1991-04-02",
               "phone": "+15550100", "email": "ana@example.org"}
    event = intake_events.report_event("r1", patient, {}, T0.isoformat())
    assert event["data"]["patient"] == {"mrn": "MRN-0042", "display_name": "Ana Silva", "birth_date": "1991-04-02"}


def _report_event(patient: dict) -> dict:
    data = {"report_id": str(uuid.uuid4()), "submitted_at": T0.isoformat(), "patient": patient,
            "activity": {}, "pain": {}, "function": {}, "home_care": {}}
    return new_event(type=triage_events.REPORT_SUBMITTED, source="/clinic/intake", subject=data["report_id"],
                     data=data)


@pytest.mark.parametrize("patient, passed_on", [
    ({"mrn": "M", "display_name": "Ana Silva", "birth_date": "1991-04-02", "phone": "+1555"},
     {"mrn": "M", "display_name": "Ana Silva", "birth_date": "1991-04-02"}),
    # a report from before birth dates were sent, or with an unreadable one: still decided
    ({"mrn": "M", "display_name": "Ana Silva"}, {"mrn": "M", "display_name": "Ana Silva"}),
    ({"mrn": "M", "display_name": "Ana Silva", "birth_date": "02/04/1991"}, {"mrn": "M", "display_name": "Ana Silva"}),
    ({"mrn": "M", "display_name": "Ana Silva", "birth_date": None}, {"mrn": "M", "display_name": "Ana Silva"}),
])
def test_triage_passes_on_the_patient_mrn_name_and_birth_date_only(patient, passed_on):
    data = triage_events.parse_report_event(_report_event(patient))
    event = triage_events.decision_event(str(data["report_id"]), {"care_level": "urgent"}, T0.isoformat(),
                                         dict(data["patient"]))
    assert event["data"]["patient"] == passed_on


def _decision(patient: dict) -> dict:
    data = {"report_id": str(uuid.uuid4()), "care_level": "specialist", "decided_at": T0.isoformat(),
            "referral": {"priority": "routine", "within_days": 14}, "patient": patient}
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=data["report_id"], data=data)


def test_the_referral_service_reads_the_birth_date_of_a_decision():
    parsed = referral_events.parse_decision(_decision({"mrn": "M", "display_name": "A", "birth_date": "1991-04-02"}),
                                            DEFAULT_WINDOWS)
    assert parsed.patient_birth_date == BORN


def test_a_decision_without_a_birth_date_is_still_booked_as_one_that_cannot_be_matched():
    for patient in ({"mrn": "M", "display_name": "A"}, {"mrn": "M", "display_name": "A", "birth_date": None}):
        assert referral_events.parse_decision(_decision(patient), DEFAULT_WINDOWS).patient_birth_date is None


def test_a_malformed_birth_date_from_a_producer_is_poison():
    with pytest.raises(PoisonEvent):
        referral_events.parse_decision(_decision({"mrn": "M", "display_name": "A", "birth_date": "yesterday"}),
                                       DEFAULT_WINDOWS)


def test_referral_events_never_carry_the_duplicate_flag():
    assert "possible_duplicate_of" not in referral_events.SNAPSHOT_FIELDS
    assert not {"patient", "patient_birth_date"} & set(referral_events.SNAPSHOT_FIELDS)
