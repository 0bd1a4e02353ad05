"""The patient's language (issue 18), no I/O: read from the decision at the edge, kept by the
booking policy (the newest linked report's), and shown in the FHIR Patient."""
from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.common.envelope import new_event
from services.referral import domain, events
from services.referral.domain import DEFAULT_WINDOWS, CreateReferral, Referral, UpdateReferral
from services.referral.fhir import referral_resources
from services.referral.fhir.ids import instant
from services.referral.fhir.records import ReferralRecord

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def decision(**data) -> dict:
    base = {"report_id": str(uuid.uuid4()), "care_level": "urgent", "decided_at": NOW.isoformat(),
            "rules_version": "2026-11-1", "fired": [], "referral": {"priority": "urgent", "within_days": 2},
            "patient": {"mrn": "MRN-0042", "display_name": "Ana Silva", "birth_date": "1991-04-02"}}
    data = {**base, **data}
    return new_event(type="clinic.triage.decided", source="/clinic/triage", subject=data["report_id"], data=data)


# -- the edge ----------------------------------------------------------------------------------
def test_a_spanish_decision_gives_its_language():
    assert events.parse_decision(decision(language="es"), DEFAULT_WINDOWS).language == "es"
    assert events.parse_decision(decision(language="en"), DEFAULT_WINDOWS).language == "en"


def test_a_decision_made_before_languages_is_english():
    assert events.parse_decision(decision(), DEFAULT_WINDOWS).language == "en"


@pytest.mark.parametrize("language", ["fr", "ES", "", None, 7, ["es"], {"code": "es"}])
def test_a_language_we_do_not_know_is_english_logged_and_never_poison(language, caplog):
    event = decision(language=language)
    with caplog.at_level(logging.WARNING, logger="services.referral.events"):
        parsed = events.parse_decision(event, DEFAULT_WINDOWS)
    assert parsed.language == "en" and parsed.patient_mrn == "MRN-0042"  # booked as ever
    [record] = [r for r in caplog.records if r.name == "services.referral.events"]
    # the report and the value's type, never the value: what a producer wrote stays out of the logs
    assert record.levelno == logging.WARNING and record.getMessage() == (
        f"decision on report {event['data']['report_id']}: unsupported language ({type(language).__name__}),"
        " taken as English")


# -- the policy --------------------------------------------------------------------------------
def _created(language: str) -> Referral:
    plan = domain.on_new_decision(None, "specialist", "r1", NOW, language=language)
    assert isinstance(plan, CreateReferral)
    return domain.create_referral(plan, referral_id="ref-1", patient_mrn="MRN-1", free_slots=[],
                                  patient_language=language).referral


def test_a_new_referral_has_its_reports_language():
    assert _created("es").patient_language == "es"
    assert _created("en").patient_language == "en"


def test_a_linked_report_gives_the_referral_its_language_the_newest_wins():
    referral = _created("en")
    plan = domain.on_new_decision(referral, "specialist", "r2", NOW + timedelta(hours=1), language="es")
    assert isinstance(plan, UpdateReferral)
    assert plan.change.referral.patient_language == "es" and plan.change.patient_changed
    back = domain.on_new_decision(plan.change.referral, "urgent", "r3", NOW + timedelta(hours=2), language="en")
    assert back.change.referral.patient_language == "en" and back.change.patient_changed


def test_a_link_in_the_same_language_does_not_change_the_patient():
    plan = domain.on_new_decision(_created("es"), "urgent", "r2", NOW + timedelta(hours=1), language="es")
    assert plan.change.referral.patient_language == "es" and not plan.change.patient_changed
    assert plan.change.referral.priority == "urgent"  # the raise happened as ever


def test_a_referral_refuses_a_language_it_does_not_know():
    with pytest.raises(ValueError, match="language"):
        Referral(referral_id="x", patient_mrn="M", priority="urgent", status="waitlisted", created_at=NOW,
                 window_ends_at=NOW, slot_id=None, report_ids=("r",), patient_language="fr")


def test_a_link_that_changes_the_language_names_the_patient_in_its_fhir_changes():
    referral = _created("en")
    changed = domain.on_new_decision(referral, "specialist", "r2", NOW, language="es").change
    same = domain.on_new_decision(referral, "specialist", "r2", NOW, language="en").change
    assert events.fhir_changed(changed) == ("ServiceRequest/ref-1", "Patient/ref-1")
    assert events.fhir_changed(same) == ("ServiceRequest/ref-1",)


# -- FHIR ---------------------------------------------------------------------------------------
def _record(**changes) -> ReferralRecord:
    values = dict(referral_id="55555555-5555-4555-8555-555555555555", patient_mrn="MRN-0042",
                  patient_name="Ana Silva", priority="urgent", status="waitlisted", created_at=NOW,
                  window_ends_at=NOW + timedelta(days=2), updated_at=NOW, version=1, slot_id=None,
                  pseudonymised_at=None)
    return ReferralRecord(**{**values, **changes})


def _patient(record: ReferralRecord) -> dict:
    resource = referral_resources.patient(record)
    get_fhir_model_class("Patient").model_validate(resource)
    return resource


def test_the_fhir_patient_says_the_language_to_speak_to_them_in():
    patient = _patient(_record(patient_language="es"))
    assert patient["communication"] == [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": True}]
    assert patient["meta"] == {"versionId": "1", "lastUpdated": instant(NOW)}


def test_the_fhir_patients_version_moves_with_its_language_then_the_purge():
    changed_at = NOW + timedelta(days=3)
    patient = _patient(_record(patient_language="es", patient_version=2, patient_changed_at=changed_at))
    assert patient["meta"] == {"versionId": "2", "lastUpdated": instant(changed_at)}
    purged_at = NOW + timedelta(days=400)
    purged = _patient(_record(patient_language="es", patient_version=2, patient_changed_at=changed_at,
                              pseudonymised_at=purged_at))
    assert purged["meta"] == {"versionId": "3", "lastUpdated": instant(purged_at)}
