"""Retention rules (issue 13 part 3), no I/O: when a case is closed and due, what is left of
the patient, the pseudonym, and that self-care decisions carry no patient identity."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.common import retention as common
from services.common import settings as settings_module
from services.common.inbox import PoisonEvent
from services.intake import retention as intake_retention
from services.intake.status_view import derive_status
from services.referral import events as referral_events
from services.referral import retention as referral_retention
from services.referral.domain import DEFAULT_WINDOWS, mrn_key
from services.triage import events as triage_events

NOW = datetime(2026, 12, 31, 12, 0, tzinfo=UTC)
POLICY = common.RetentionPolicy(identity_days=30)
KEY = common.pseudonym_key("a secret", "intake")
PATIENT = {"mrn": "MRN-0042", "given_name": "Ana", "family_name": "Silva", "birth_date": "1991-04-02",
           "phone": "+15550100", "email": "ana@example.org", "contact_consent": ["sms"]}


def test_the_settings_and_their_defaults():
    default = settings_module.load("intake", env={})
    assert (default.retention_identity_days, default.retention_purge_interval_seconds,
            default.retention_batch_size, default.pseudonym_key) == (30.0, 3600.0, 1000, None)
    given = settings_module.load("intake", env={"CLINIC_RETENTION_IDENTITY_DAYS": "7.5",
                                                "CLINIC_RETENTION_PURGE_INTERVAL_SECONDS": "60",
                                                "CLINIC_RETENTION_BATCH_SIZE": "50", "CLINIC_PSEUDONYM_KEY": "k"})
    assert (given.retention_identity_days, given.retention_purge_interval_seconds,
            given.retention_batch_size, given.pseudonym_key) == (7.5, 60.0, 50, "k")
    with pytest.raises(ValueError):
        common.RetentionPolicy(identity_days=-1)


@pytest.mark.parametrize(("care_level", "referral_status", "closed"), [
    (None, None, False), ("urgent", None, False), ("specialist", None, False), ("self_care", None, True),
    ("urgent", "booked", False), ("urgent", "waitlisted", False), ("urgent", "cancelled", True),
    ("specialist", "completed", True), (None, "completed", True), (None, "booked", False),
])
def test_a_report_case_is_closed_exactly_when_its_kiosk_shows_closed(care_level, referral_status, closed):
    assert intake_retention.is_case_closed(care_level, referral_status) is closed
    assert (derive_status(care_level, referral_status) == "closed") is closed
    assert intake_retention.CLOSING_REFERRAL_STATUSES == ("cancelled", "completed")


def test_a_report_is_due_only_closed_for_the_whole_period_and_not_yet_pseudonymised():
    def due(**facts):
        base = {"care_level": "self_care", "referral_status": None, "closed_at": NOW - timedelta(days=31),
                "pseudonymised_at": None, "now": NOW}
        return intake_retention.is_due(POLICY, **{**base, **facts})

    assert due()
    assert due(closed_at=NOW - timedelta(days=30))  # exactly N days: due
    assert not due(closed_at=NOW - timedelta(days=29, hours=23))
    assert not due(closed_at=None)
    assert not due(pseudonymised_at=NOW - timedelta(days=1))
    assert not due(care_level="urgent")  # closed_at set by hand on an open case: left alone
    assert due(care_level="urgent", referral_status="completed")
    assert not due(care_level="urgent", referral_status="booked")


def test_what_is_left_of_a_report_patient_is_the_mrn_pseudonym():
    left = intake_retention.pseudonymised_patient(PATIENT, KEY)
    assert left == {"mrn_pseudonym": common.mrn_pseudonym(KEY, "MRN-0042")}
    assert [v for v in ("MRN-0042", "Ana", "Silva", "1991", "5550100", "ana@") if v in str(left)] == []
    assert intake_retention.pseudonymised_patient(left, KEY) == left  # twice: the same
    assert intake_retention.pseudonymised_patient(PATIENT, None) == {"mrn_pseudonym": None}


def test_the_pseudonym_is_keyed_per_service_and_follows_the_mrn_as_compared():
    pseudonym = common.mrn_pseudonym(KEY, "MRN-0042")
    assert pseudonym.startswith("pseudonym:") and len(pseudonym) == len("pseudonym:") + 32
    assert "0042" not in pseudonym
    assert common.mrn_pseudonym(KEY, " mrn-0042 ") == common.mrn_pseudonym(KEY, "ＭＲＮ－００４２") == pseudonym
    assert common.mrn_pseudonym(KEY, "MRN-0043") != pseudonym
    assert common.mrn_pseudonym(common.pseudonym_key("a secret", "referral"), "MRN-0042") != pseudonym
    assert common.mrn_pseudonym(common.pseudonym_key("another", "intake"), "MRN-0042") != pseudonym
    assert common.mrn_pseudonym(KEY, pseudonym) == pseudonym
    assert common.pseudonym_key(None, "intake") is None and common.mrn_pseudonym(None, "MRN-0042") is None


@pytest.mark.parametrize("mrn", ["MRN-0042", " mrn-0042\t", "ＭＲＮ－００４２", "İstanbul-1", "Straße-ß", "ﬁ-7"])
def test_the_compared_mrn_is_the_referral_services_key(mrn):
    assert common.compared_mrn(mrn) == mrn_key(mrn)


def test_key_from_settings_prefers_the_pseudonym_key_then_the_services_secret():
    with_both = settings_module.load("intake", env={"CLINIC_PSEUDONYM_KEY": "p", "CLINIC_SECRET_KEY": "s"})
    secret_only = settings_module.load("intake", env={"CLINIC_SECRET_KEY": "s"})
    assert common.key_from_settings(with_both) == common.pseudonym_key("p", "intake")
    assert common.key_from_settings(secret_only) == common.pseudonym_key("s", "intake")


def test_a_closed_referral_is_due_after_the_period_and_open_ones_never():
    old = NOW - timedelta(days=45)
    for status, expected in (("cancelled", True), ("completed", True), ("booked", False), ("waitlisted", False)):
        assert referral_retention.is_due(POLICY, status=status, updated_at=old, pseudonymised_at=None,
                                         now=NOW) is expected
    assert not referral_retention.is_due(POLICY, status="completed", updated_at=NOW - timedelta(days=2),
                                         pseudonymised_at=None, now=NOW)
    assert not referral_retention.is_due(POLICY, status="completed", updated_at=old, pseudonymised_at=old, now=NOW)


def test_what_is_left_of_a_referral_patient():
    new = referral_retention.pseudonymised_identity(mrn="MRN-0042", duplicate_mrn="mrn-0042 ", key=KEY)
    pseudonym = common.mrn_pseudonym(KEY, "MRN-0042")
    assert new == {"patient_mrn": pseudonym, "patient_mrn_key": pseudonym, "patient_display_name": "(pseudonymised)",
                   "patient_birth_date": None, "possible_duplicate_mrn": pseudonym}
    without_key = referral_retention.pseudonymised_identity(mrn="MRN-0042", duplicate_mrn=None, key=None)
    assert without_key["patient_mrn"] == "(removed)" and without_key["possible_duplicate_mrn"] is None


def test_batches_run_until_one_comes_back_short():
    done = iter([3, 3, 1, 3])
    result = common.purge_in_batches(lambda size: next(done), service="intake", table="t", batch_size=3)
    assert (result.pseudonymised, result.batches) == (7, 3)


# -- self care carries no patient identity downstream ---------------------------------------
def _decision(care_level: str) -> dict:
    return {"care_level": care_level, "rules_version": "2026-11-1", "fired": [], "likely_source": "joint",
            "possible_causes": [], "notes": [], "advice": ["rest"],
            "referral": None if care_level == "self_care" else {"priority": "routine", "within_days": 14}}


def test_a_self_care_decision_event_has_no_patient_and_the_others_keep_theirs():
    patient = {"mrn": "MRN-0042", "display_name": "Ana Silva", "birth_date": "1991-04-02"}
    report_id = str(uuid.uuid4())
    self_care = triage_events.decision_event(report_id, _decision("self_care"), NOW.isoformat(), patient)
    assert "patient" not in self_care["data"]
    assert "MRN-0042" not in str(self_care) and "Ana" not in str(self_care) and "1991" not in str(self_care)
    specialist = triage_events.decision_event(report_id, _decision("specialist"), NOW.isoformat(), patient)
    assert specialist["data"]["patient"] == patient


def test_the_referral_service_reads_a_self_care_decision_without_patient_but_refuses_others_without():
    self_care = triage_events.decision_event(str(uuid.uuid4()), _decision("self_care"), NOW.isoformat(), {})
    parsed = referral_events.parse_decision(self_care, DEFAULT_WINDOWS)
    assert (parsed.care_level, parsed.patient_mrn, parsed.patient_name, parsed.patient_birth_date) == (
        "self_care", None, None, None)
    urgent = triage_events.decision_event(str(uuid.uuid4()), _decision("urgent"), NOW.isoformat(), {})
    del urgent["data"]["patient"]
    with pytest.raises(PoisonEvent, match="patient"):
        referral_events.parse_decision(urgent, DEFAULT_WINDOWS)


def test_intake_reads_a_self_care_decision_without_patient():
    from services.intake import events as intake_events

    event = triage_events.decision_event(str(uuid.uuid4()), _decision("self_care"), NOW.isoformat(), {})
    assert intake_events.parse_decision(event)["care_level"] == "self_care"


@pytest.mark.parametrize("patient", [
    PATIENT,
    {**PATIENT, "phone": None, "contact_consent": ["email"]},
    {**PATIENT, "email": "  a.b+c@mail.example.co.uk ", "contact_consent": ["sms", "email"]},
], ids=["sms", "email only", "both"])
def test_the_email_and_the_consent_go_with_the_phone(patient):
    left = intake_retention.pseudonymised_patient(patient, KEY)
    assert {"phone", "email", "contact_consent"}.isdisjoint(left)
    assert "@" not in str(left) and "sms" not in str(left)
