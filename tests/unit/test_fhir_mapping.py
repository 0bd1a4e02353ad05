"""The FHIR interface's pure mapping (services/referral/fhir): rows in, FHIR resources out,
no I/O. Each resource built here is also checked against the fhir.resources R4B models."""
from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.referral.fhir import bundles, capability, provider_resources, referral_resources
from services.referral.fhir.ids import MRN_SYSTEM, instant
from services.referral.fhir.records import (Booking, HistoryRecord, ProviderRecord, ReferralRecord, ReportLink,
                                            SlotRecord)
from services.referral.fhir.search import SEARCHES

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RID, SLOT, SLOT2, PROVIDER = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
                              "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444")
R1, R2 = "55555555-5555-4555-8555-555555555555", "66666666-6666-4666-8666-666666666666"
PURE = ("records", "ids", "referral_resources", "provider_resources", "bundles", "outcome", "capability", "search")


def valid(resource: dict) -> dict:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def referral(**changes) -> ReferralRecord:
    values = dict(referral_id=RID, patient_mrn="MRN-0042", patient_name="Ana Silva", priority="urgent",
                  status="booked", created_at=T0, window_ends_at=T0 + timedelta(days=2),
                  updated_at=T0 + timedelta(hours=2), version=3, slot_id=SLOT2, pseudonymised_at=None)
    return ReferralRecord(**{**values, **changes})


REPORTS = [ReportLink(R1, "specialist", T0, 0), ReportLink(R2, "urgent", T0 + timedelta(hours=1), 1)]
HISTORY = [
    HistoryRecord(1, T0, "system", "created", None, "booked", "routine referral: earliest free slot", None, SLOT),
    HistoryRecord(2, T0 + timedelta(hours=1), "system", "raised_to_urgent", "booked", "booked",
                  "urgent report: the window now ends ...", SLOT, SLOT2),
    HistoryRecord(3, T0 + timedelta(hours=2), "dana", "report_linked", "booked", "booked", "linked", None, None),
]
PROVIDER_ROW = ProviderRecord(PROVIDER, "Hip Clinic", "pain_management", "Room 2", T0 - timedelta(days=9))


def slot_row(**changes) -> SlotRecord:
    values = dict(slot_id=SLOT2, provider_id=PROVIDER, start=T0 + timedelta(days=1),
                  end=T0 + timedelta(days=1, minutes=30), booked=True, version=2, created_at=T0 - timedelta(days=3),
                  changed_at=T0 + timedelta(hours=1))
    return SlotRecord(**{**values, **changes})


@pytest.mark.parametrize("module", PURE)
def test_the_mapping_does_no_io(module):
    path = Path(referral_resources.__file__).with_name(f"{module}.py")
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.ImportFrom) and not node.level}
    assert imported.isdisjoint({"flask", "psycopg", "psycopg_pool", "kafka", "requests", "werkzeug", "services"})


def test_service_request():
    request = valid(referral_resources.service_request(referral(), REPORTS, HISTORY))
    assert request["meta"] == {"versionId": "3", "lastUpdated": "2026-12-01T11:00:00Z"}
    assert (request["status"], request["intent"], request["priority"]) == ("active", "order", "urgent")
    assert request["subject"] == {"reference": f"Patient/{RID}"}
    assert request["occurrencePeriod"] == {"start": "2026-12-01T09:00:00Z", "end": "2026-12-03T09:00:00Z"}
    assert [c["coding"][0]["code"] for c in request["reasonCode"]] == ["specialist", "urgent"]
    assert [s["identifier"]["value"] for s in request["supportingInfo"]] == [R1, R2]
    assert [(n["authorString"], n["text"]) for n in request["note"]] == [(e.actor, e.reason) for e in HISTORY]
    assert "MRN-0042" not in str(request) and "Ana Silva" not in str(request)


@pytest.mark.parametrize(("status", "expected"), [("booked", "active"), ("waitlisted", "active"),
                                                  ("completed", "completed"), ("cancelled", "revoked")])
def test_service_request_status(status, expected):
    slot = None if status in ("waitlisted", "cancelled") else SLOT2
    assert referral_resources.service_request(referral(status=status, slot_id=slot), REPORTS, HISTORY)[
        "status"] == expected


def test_versions_rebuild_what_history_tells():
    versions = [valid(v) for v in referral_resources.service_request_versions(referral(), REPORTS, HISTORY)]
    assert [v["meta"]["versionId"] for v in versions] == ["1", "2", "3"]
    assert [v["priority"] for v in versions] == ["routine", "urgent", "urgent"]  # raised at version 2
    assert "occurrencePeriod" not in versions[0]  # the window before the raise is not kept
    assert [len(v["supportingInfo"]) for v in versions] == [1, 2, 2]
    assert [len(v["note"]) for v in versions] == [1, 2, 3]
    assert versions[-1] == referral_resources.service_request(referral(), REPORTS, HISTORY)


@pytest.mark.parametrize(("status", "expected"), [("booked", "booked"), ("completed", "fulfilled"),
                                                  ("cancelled", "cancelled")])
def test_appointment(status, expected):
    booking = Booking(referral(status=status, slot_id=None if status == "cancelled" else SLOT2), slot_row(),
                      PROVIDER_ROW)
    appointment = valid(referral_resources.appointment(booking))
    assert (appointment["id"], appointment["status"]) == (RID, expected)
    assert appointment["slot"] == [{"reference": f"Slot/{SLOT2}"}]
    assert (appointment["start"], appointment["end"]) == ("2026-12-02T09:00:00Z", "2026-12-02T09:30:00Z")
    assert [p["actor"]["reference"] for p in appointment["participant"]] == [
        f"Patient/{RID}", f"HealthcareService/{PROVIDER}", f"Location/{PROVIDER}"]


def test_patient_and_its_pseudonymised_version():
    patient = valid(referral_resources.patient(referral()))
    assert patient["identifier"] == [{"use": "usual", "system": MRN_SYSTEM, "value": "MRN-0042"}]
    assert patient["id"] == RID and patient["meta"]["versionId"] == "1"
    purged = valid(referral_resources.patient(referral(patient_mrn="pseudonym-1", patient_name="pseudonym",
                                                       pseudonymised_at=T0 + timedelta(days=400))))
    assert purged["meta"] == {"versionId": "2", "lastUpdated": instant(T0 + timedelta(days=400))}
    assert "MRN-0042" not in str(purged)


def test_providers_and_slots():
    assert valid(provider_resources.slot(slot_row()))["status"] == "busy"
    free = valid(provider_resources.slot(slot_row(booked=False, version=1, changed_at=None)))
    assert free["status"] == "free" and free["meta"]["lastUpdated"] == instant(T0 - timedelta(days=3))
    for build in (provider_resources.schedule, provider_resources.healthcare_service, provider_resources.location):
        resource = valid(build(PROVIDER_ROW))
        assert resource["id"] == PROVIDER and resource["meta"]["versionId"] == "1"
    assert provider_resources.location(PROVIDER_ROW)["name"] == "Room 2"


def test_searchset_links_and_total():
    resources = [provider_resources.slot(slot_row())]
    last = valid(bundles.searchset("https://x/fhir/R4", "Slot", resources, params=[("status", "busy")],
                                   next_cursor=None, first_page=True))
    assert last["total"] == 1 and last["link"] == [{"relation": "self", "url": "https://x/fhir/R4/Slot?status=busy"}]
    assert last["entry"][0]["fullUrl"] == f"https://x/fhir/R4/Slot/{SLOT2}"
    more = valid(bundles.searchset("https://x/fhir/R4", "Slot", resources, params=[("status", "busy")],
                                   next_cursor="abc", first_page=True))
    assert "total" not in more and more["link"][1] == {
        "relation": "next", "url": "https://x/fhir/R4/Slot?status=busy&_cursor=abc"}
    later = bundles.searchset("https://x/fhir/R4", "Slot", resources, params=[], next_cursor=None, first_page=False)
    assert "total" not in later  # how many came before is not known here


def test_history_bundle():
    versions = referral_resources.service_request_versions(referral(), REPORTS, HISTORY)
    bundle = valid(bundles.history("https://x/fhir/R4", versions, self_url="https://x/h"))
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "PUT", "POST"]
    assert bundle["entry"][0]["response"]["etag"] == 'W/"3"'


def test_capability_statement_lists_the_declared_searches():
    statement = valid(capability.capability_statement("https://x/fhir/R4"))
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == set(capability.READS)
    for resource_type, params in SEARCHES.items():
        assert [p["name"] for p in resources[resource_type]["searchParam"]] == [p.name for p in params]
