"""A generic FHIR client (fhirpy) drives the interface over real HTTP: the capability
statement, searches that it pages through by the next links, and reads of what they found;
an error reaches it as the OperationOutcome it expects. Everything it receives is also
checked against the fhir.resources R4B models."""
from __future__ import annotations

from datetime import timedelta

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from services.referral.app import create_app
from services.referral.fhir.ids import MRN_SYSTEM
from tests.app_support import flask_app
from tests.fhir_support import BASE, build_clinic, serving, valid
from tests.referral_support import staff_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def clinic(referral_settings):
    return build_clinic(referral_settings)


@pytest.fixture(scope="module")
def fhir(referral_settings):
    with flask_app(create_app, referral_settings) as app, serving(app) as url:
        yield SyncFHIRClient(url + BASE, authorization=f"Bearer {staff_token(referral_settings, 'scheduler')}")


def test_capability_statement(fhir):
    statement = valid(fhir.execute("metadata", method="get"))
    assert {r["type"] for r in statement["rest"][0]["resource"]} >= {"ServiceRequest", "Appointment", "Slot"}


def test_search_pages_and_reads(fhir, clinic):
    search = (fhir.resources("ServiceRequest")
              .search(_lastUpdated__ge=clinic.now, _lastUpdated__lt=clinic.now + timedelta(days=59)).limit(2))
    first_page = search.fetch()
    assert len(first_page) == 2
    everything = search.fetch_all()  # through the next links
    assert sorted(r.id for r in everything) == sorted(clinic.referrals.values())
    for found in everything:
        read = fhir.reference("ServiceRequest", found.id).to_resource()
        assert valid(read.serialize()) == valid(found.serialize())
        patient = fhir.reference(reference=read["subject"]["reference"]).to_resource()
        assert valid(patient.serialize())["identifier"][0]["system"] == MRN_SYSTEM


def test_searches_by_patient_and_chains(fhir, clinic):
    by_identifier = fhir.resources("ServiceRequest").search(subject__Patient__identifier=clinic.mrns["b"]).limit(1)
    assert [r.id for r in by_identifier.fetch_all()] == [clinic.referrals["b2"], clinic.referrals["b"]]
    chained = fhir.resources("ServiceRequest").search(patient__identifier=f"{MRN_SYSTEM}|{clinic.mrns['a']}")
    assert [r.id for r in chained.fetch_all()] == [clinic.referrals["a"]]
    appointments = fhir.resources("Appointment").search(
        date__ge=clinic.now.date(), date__lt=(clinic.now + timedelta(days=59)).date(), status="booked").limit(1)
    booked = appointments.fetch_all()
    assert [a.id for a in booked] == [clinic.referrals["a"], clinic.referrals["d"]]
    for appointment in booked:
        slot = fhir.reference(reference=appointment["slot"][0]["reference"]).to_resource()
        assert valid(slot.serialize())["status"] == "busy"
        schedule = fhir.reference(reference=slot["schedule"]["reference"]).to_resource()
        assert valid(schedule.serialize())["id"] == clinic.provider["provider_id"]


def test_free_slots_of_a_schedule(fhir, clinic):
    free = fhir.resources("Slot").search(schedule=f"Schedule/{clinic.provider['provider_id']}", status="free")
    assert [s.id for s in free.fetch_all()] == [clinic.slots[3]]


def test_errors_reach_the_client_as_outcomes(fhir, clinic):
    with pytest.raises(OperationOutcome) as refused:
        fhir.resources("ServiceRequest").search(identifier="x").fetch()
    assert refused.value.resource["issue"][0]["location"] == ["http.identifier"]
    with pytest.raises(ResourceNotFound):
        fhir.reference("Appointment", clinic.referrals["e"]).to_resource()  # waitlisted: no booking
