"""The FHIR R4 interface (issue 17) through the Flask test client, on the real PostgreSQL:
reads and their mapping, searches and their paging, _history, and every error as an
OperationOutcome. Every resource and Bundle answered is checked against the fhir.resources
R4B models (tests/fhir_support.valid)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest

from services.referral.fhir.ids import MRN_SYSTEM
from tests.app_support import flask_app
from tests.fhir_support import BASE, FHIR_JSON, build_clinic, valid
from tests.referral_support import staff_token

from services.referral.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def clinic(referral_settings):
    return build_clinic(referral_settings)


@pytest.fixture(scope="module")
def staff(referral_settings):
    return {"Authorization": f"Bearer {staff_token(referral_settings, 'scheduler')}"}


@pytest.fixture
def get(client, staff):
    def fetch(path: str, status: int = 200, **headers):
        response = client.get(path if path.startswith("http") else BASE + path, headers={**staff, **headers})
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.content_type == FHIR_JSON
        body = response.get_json()
        if status >= 400:
            assert body["resourceType"] == "OperationOutcome"
        return valid(body)

    return fetch


def outcome(body: dict) -> tuple[str, str, list[str]]:
    [issue] = body["issue"]
    return issue["code"], issue["diagnostics"], issue.get("location", [])


def every_page(get, path: str) -> tuple[list[dict], list[dict]]:
    """Follows the next links from `path`: (every page's bundle, every entry's resource)."""
    pages, resources, url = [], [], path
    while url:
        page = get(url)
        pages.append(page)
        resources += [entry["resource"] for entry in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    return pages, resources


def ids(resources: list[dict]) -> list[str]:
    return [r["id"] for r in resources]


# -- reads ---------------------------------------------------------------------------------
def test_a_referral_is_a_service_request(get, clinic):
    a = clinic.referrals["a"]
    request = get(f"/ServiceRequest/{a}")
    assert (request["id"], request["status"], request["intent"], request["priority"]) == (a, "active", "order",
                                                                                        "urgent")
    assert request["subject"] == {"reference": f"Patient/{a}"}
    assert request["meta"]["versionId"] == "2"  # created, then a report linked
    assert request["authoredOn"] == request["occurrencePeriod"]["start"]
    assert request["occurrencePeriod"]["end"] > request["occurrencePeriod"]["start"]
    assert [r["coding"][0]["code"] for r in request["reasonCode"]] == ["urgent"]
    assert [s["identifier"]["value"] for s in request["supportingInfo"]] == clinic.reports["a"]
    assert len(request["note"]) == 2 and "earliest free slot" in request["note"][0]["text"]


@pytest.mark.parametrize(("name", "status"), [("a", "active"), ("b", "revoked"), ("c", "completed"),
                                              ("d", "active"), ("e", "active"), ("b2", "active")])
def test_service_request_status_follows_the_referral(get, clinic, name, status):
    assert get(f"/ServiceRequest/{clinic.referrals[name]}")["status"] == status


@pytest.mark.parametrize(("name", "status", "slot"), [("a", "booked", 0), ("b", "cancelled", 1),
                                                      ("c", "fulfilled", 2), ("d", "booked", 1)])
def test_a_booking_is_an_appointment(get, clinic, name, status, slot):
    referral_id = clinic.referrals[name]
    appointment = get(f"/Appointment/{referral_id}")
    assert appointment["status"] == status
    assert appointment["slot"] == [{"reference": f"Slot/{clinic.slots[slot]}"}]
    assert appointment["basedOn"] == [{"reference": f"ServiceRequest/{referral_id}"}]
    provider = clinic.provider["provider_id"]
    assert [p["actor"]["reference"] for p in appointment["participant"]] == [
        f"Patient/{referral_id}", f"HealthcareService/{provider}", f"Location/{provider}"]


def test_a_waitlisted_referral_has_no_appointment(get, clinic):
    body = get(f"/Appointment/{clinic.referrals['e']}", 404)
    assert outcome(body)[0] == "not-found"


def test_the_patient_has_the_mrn_as_identifier_and_no_mrn_in_its_id(get, clinic):
    patient = get(f"/Patient/{clinic.referrals['a']}")
    assert patient["identifier"] == [{"use": "usual", "system": MRN_SYSTEM, "value": clinic.mrns["a"]}]
    assert patient["name"] == [{"text": "Ana Silva"}]
    assert clinic.mrns["a"] not in patient["id"]


def test_slots_schedule_and_provider(get, clinic):
    provider = clinic.provider["provider_id"]
    busy, free = get(f"/Slot/{clinic.slots[1]}"), get(f"/Slot/{clinic.slots[3]}")
    assert (busy["status"], free["status"]) == ("busy", "free")
    assert busy["schedule"] == {"reference": f"Schedule/{provider}"}
    # booked by b, freed by b's cancellation, booked by d: three changes since it was stored
    assert (busy["meta"]["versionId"], free["meta"]["versionId"]) == ("4", "1")
    schedule = get(f"/Schedule/{provider}")
    assert [a["reference"] for a in schedule["actor"]] == [f"HealthcareService/{provider}", f"Location/{provider}"]
    assert get(f"/HealthcareService/{provider}")["name"] == clinic.provider["name"]
    assert get(f"/Location/{provider}")["name"] == clinic.provider["location"]


@pytest.mark.parametrize("path", ["/ServiceRequest/{id}", "/Appointment/{id}", "/Patient/{id}", "/Slot/{id}",
                                  "/Schedule/{id}", "/HealthcareService/{id}", "/Location/{id}",
                                  "/ServiceRequest/{id}/_history"])
@pytest.mark.parametrize("unknown", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_id_is_a_404_outcome(get, path, unknown):
    assert outcome(get(path.format(id=unknown), 404))[0] == "not-found"


def test_every_read_has_meta_and_an_etag(client, staff, clinic):
    for path in (f"/ServiceRequest/{clinic.referrals['a']}", f"/Slot/{clinic.slots[0]}",
                 f"/Patient/{clinic.referrals['a']}", f"/Appointment/{clinic.referrals['a']}",
                 f"/Location/{clinic.provider['provider_id']}"):
        response = client.get(BASE + path, headers=staff)
        meta = response.get_json()["meta"]
        assert meta["lastUpdated"] and response.headers["ETag"] == f'W/"{meta["versionId"]}"'


def test_history_is_every_version_newest_first(get, clinic):
    for name, versions in (("a", 2), ("b", 2), ("c", 2)):
        referral_id = clinic.referrals[name]
        bundle = get(f"/ServiceRequest/{referral_id}/_history")
        assert bundle["type"] == "history" and bundle["total"] == versions
        entries = bundle["entry"]
        assert [e["resource"]["meta"]["versionId"] for e in entries] == [str(v) for v in range(versions, 0, -1)]
        assert entries[0]["resource"] == get(f"/ServiceRequest/{referral_id}")  # the newest is the read
        assert entries[-1]["request"] == {"method": "POST", "url": "ServiceRequest"}
        assert entries[-1]["resource"]["status"] == "active"
    cancelled = get(f"/ServiceRequest/{clinic.referrals['b']}/_history")["entry"]
    assert [e["resource"]["status"] for e in cancelled] == ["revoked", "active"]
    linked = get(f"/ServiceRequest/{clinic.referrals['a']}/_history")["entry"]
    assert [len(e["resource"]["supportingInfo"]) for e in linked] == [2, 1]


# -- searches --------------------------------------------------------------------------------
def in_bubble(clinic, name: str = "_lastUpdated") -> str:
    return f"{name}=ge{clinic.now.isoformat()}&{name}=lt{(clinic.now + timedelta(days=59)).isoformat()}".replace(
        "+", "%2B")


def test_service_requests_page_by_last_update(get, clinic):
    pages, found = every_page(get, f"/ServiceRequest?{in_bubble(clinic)}&_count=2")
    assert len(pages) == 3 and all(p["type"] == "searchset" for p in pages)  # six referrals
    assert sorted(ids(found)) == sorted(clinic.referrals.values())
    assert [r["meta"]["lastUpdated"] for r in found] == sorted(r["meta"]["lastUpdated"] for r in found)
    assert "total" not in pages[0]  # more than one page: not counted
    first_self = next(link["url"] for link in pages[0]["link"] if link["relation"] == "self")
    assert urlsplit(first_self).path == f"{BASE}/ServiceRequest" and "_cursor" not in first_self
    one_page = get(f"/ServiceRequest?{in_bubble(clinic)}&_count=6")
    assert one_page["total"] == 6 and not [link for link in one_page["link"] if link["relation"] == "next"]


@pytest.mark.parametrize("parameter", ["patient.identifier", "subject:Patient.identifier"])
def test_service_requests_by_patient_identifier(get, clinic, parameter):
    typed_otherwise = f"  {clinic.mrns['a'].lower()}"  # as patient matching compares MRNs
    for value in (clinic.mrns["a"], f"{MRN_SYSTEM}|{clinic.mrns['a']}", typed_otherwise):
        assert ids(every_page(get, f"/ServiceRequest?{parameter}={value}")[1]) == [clinic.referrals["a"]]
    assert get(f"/ServiceRequest?{parameter}=urn:other|{clinic.mrns['a']}")["total"] == 0


def test_service_requests_by_status_priority_and_patient(get, clinic):
    bubble = in_bubble(clinic)
    assert set(ids(every_page(get, f"/ServiceRequest?{bubble}&status=active")[1])) == {
        clinic.referrals[n] for n in ("a", "d", "e", "b2")}
    assert ids(every_page(get, f"/ServiceRequest?{bubble}&status=revoked")[1]) == [clinic.referrals["b"]]
    assert set(ids(every_page(get, f"/ServiceRequest?{bubble}&priority=urgent")[1])) == {
        clinic.referrals[n] for n in ("a", "c", "b2")}
    assert ids(every_page(get, f"/ServiceRequest?subject=Patient/{clinic.referrals['c']}")[1]) == [
        clinic.referrals["c"]]
    assert ids(every_page(get, f"/ServiceRequest?patient={clinic.referrals['c']}&status=active")[1]) == []


def test_service_requests_in_queue_order_page_past_each_priority(get, clinic):
    """Without _lastUpdated: the queue's order (urgent first, then oldest), paged with the
    queue's keyset, across the rank boundary and with the rank fixed."""
    patient = f"patient.identifier={clinic.mrns['b']}"
    pages, found = every_page(get, f"/ServiceRequest?{patient}&_count=1")
    assert ids(found) == [clinic.referrals["b2"], clinic.referrals["b"]] and len(pages) == 2
    assert [r["priority"] for r in found] == ["urgent", "routine"]
    for priority, name in (("routine", "b"), ("urgent", "b2")):
        assert ids(every_page(get, f"/ServiceRequest?{patient}&priority={priority}&_count=1")[1]) == [
            clinic.referrals[name]]
    # one status across the whole database (other tests' referrals too): none twice, in queue order
    pages, completed = every_page(get, "/ServiceRequest?status=completed&_count=50")
    assert clinic.referrals["c"] in ids(completed) and len(set(ids(completed))) == len(completed)
    keys = [(0 if r["priority"] == "urgent" else 1, datetime.fromisoformat(r["authoredOn"]), r["id"])
            for r in completed]
    assert keys == sorted(keys)


def test_appointments_by_date_status_and_patient(get, clinic):
    window = in_bubble(clinic, "date")
    pages, found = every_page(get, f"/Appointment?{window}&_count=2")
    # booked and completed bookings, in start order: slots 0 (a), 1 (d), 2 (c)
    assert ids(found) == [clinic.referrals[n] for n in "adc"] and len(pages) == 2
    assert [a["status"] for a in found] == ["booked", "booked", "fulfilled"]
    assert ids(every_page(get, f"/Appointment?{window}&status=fulfilled")[1]) == [clinic.referrals["c"]]
    day = (clinic.now + timedelta(days=1)).date().isoformat()
    assert ids(every_page(get, f"/Appointment?date={day}")[1]) == [clinic.referrals[n] for n in "adc"]
    cancelled = every_page(get, f"/Appointment?patient=Patient/{clinic.referrals['b']}")[1]
    assert [(a["id"], a["status"]) for a in cancelled] == [(clinic.referrals["b"], "cancelled")]
    for waitlisted in ("e", "b2"):
        assert get(f"/Appointment?patient=Patient/{clinic.referrals[waitlisted]}")["total"] == 0


def test_slots_by_schedule_start_and_status(get, clinic):
    schedule = f"schedule=Schedule/{clinic.provider['provider_id']}"
    pages, found = every_page(get, f"/Slot?{schedule}&_count=3")
    assert ids(found) == clinic.slots and len(pages) == 2
    assert ids(every_page(get, f"/Slot?{schedule}&status=free")[1]) == [clinic.slots[3]]
    assert ids(every_page(get, f"/Slot?{schedule}&status=busy&_count=1")[1]) == clinic.slots[:3]
    later = (clinic.now + timedelta(days=2)).isoformat().replace("+", "%2B")
    assert ids(every_page(get, f"/Slot?{schedule}&start=gt{later}")[1]) == [clinic.slots[3]]
    assert clinic.slots[3] in ids(every_page(get, f"/Slot?status=free&{in_bubble(clinic, 'start')}")[1])


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("query", "parameter", "code"), [
    ("foo=1", "foo", "not-supported"),
    ("_sort=status", "_sort", "not-supported"),
    ("status:not=active", "status:not", "not-supported"),
    ("status=draft", "status", "invalid"),
    ("status=active,completed", "status", "not-supported"),
    ("priority=asap", "priority", "invalid"),
    ("_count=0", "_count", "invalid"),
    ("_count=201", "_count", "invalid"),
    ("_count=ten", "_count", "invalid"),
    ("_lastUpdated=yesterday", "_lastUpdated", "invalid"),
    ("_lastUpdated=ge2026-12-01T10:00", "_lastUpdated", "invalid"),
    ("_lastUpdated=sa2026-12-01", "_lastUpdated", "not-supported"),
    ("_lastUpdated=2026-13-01", "_lastUpdated", "invalid"),
    ("patient=Practitioner/1", "patient", "invalid"),
    ("_cursor=bm90LWEtY3Vyc29y", "_cursor", "invalid"),
    ("status=active&status=revoked", "status", "not-supported"),
])
def test_a_bad_search_is_a_400_outcome_naming_the_parameter(get, query, parameter, code):
    found_code, message, location = outcome(get(f"/ServiceRequest?{query}", 400))
    assert (found_code, location) == (code, [f"http.{parameter}"])
    assert parameter.split(":")[0] in message


def test_a_cursor_of_another_search_is_refused(get, clinic):
    page = get(f"/Slot?schedule=Schedule/{clinic.provider['provider_id']}&_count=1")
    cursor = next(link["url"] for link in page["link"] if link["relation"] == "next").rsplit("_cursor=", 1)[1]
    assert outcome(get(f"/Appointment?_cursor={cursor}", 400))[2] == ["http._cursor"]


def test_lenient_handling_ignores_unknown_parameters(get, clinic):
    path = f"/ServiceRequest?patient.identifier={clinic.mrns['a']}&foo=1&_sort=x"
    bundle = get(path, Prefer="return=representation, handling=lenient")
    assert ids([e["resource"] for e in bundle["entry"]]) == [clinic.referrals["a"]]
    self_link = bundle["link"][0]["url"]
    assert "foo" not in self_link and "_sort" not in self_link and "patient.identifier" in self_link
    assert outcome(get(path, 400))[2] == ["http.foo"]
    # lenient is about unknown parameters: a bad value of a known one is still refused
    assert outcome(get("/ServiceRequest?_count=0", 400, Prefer="handling=lenient"))[2] == ["http._count"]


def test_a_read_refuses_parameters(get, clinic):
    assert outcome(get(f"/Patient/{clinic.referrals['a']}?name=x", 400))[2] == ["http.name"]
    assert get(f"/Patient/{clinic.referrals['a']}?name=x", Prefer="handling=lenient")["resourceType"] == "Patient"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer staff_not-a-token"},
                                     {"Authorization": "Basic abc"}])
def test_no_staff_token_is_a_401_outcome(client, clinic, headers):
    response = client.get(f"{BASE}/ServiceRequest/{clinic.referrals['a']}", headers=headers)
    assert response.status_code == 401 and response.content_type == FHIR_JSON
    assert outcome(valid(response.get_json()))[0] == "login"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_kiosk_key_is_a_401_outcome(client, clinic, intake_settings):
    from tests.intake_support import new_kiosk

    response = client.get(f"{BASE}/Slot?status=free", headers=new_kiosk(intake_settings).headers)
    assert response.status_code == 401 and outcome(valid(response.get_json()))[0] == "login"


def test_not_acceptable_is_a_406_outcome(get, clinic):
    path = f"/Patient/{clinic.referrals['a']}"
    assert outcome(get(path, 406, Accept="application/fhir+xml"))[0] == "not-supported"
    assert outcome(get(f"{path}?_format=xml", 406))[0] == "not-supported"
    assert get(f"{path}?_format=json", Accept="application/fhir+xml")["resourceType"] == "Patient"
    for accept in ("application/json", "*/*", "application/fhir+json; fhirVersion=4.0"):
        assert get(path, Accept=accept)["resourceType"] == "Patient"


def test_unknown_routes_and_methods_are_outcomes(client, staff, clinic):
    unknown = client.get(f"{BASE}/Observation/{uuid.uuid4()}", headers=staff)
    assert unknown.status_code == 404 and outcome(valid(unknown.get_json()))[0] == "not-found"
    write = client.put(f"{BASE}/ServiceRequest/{clinic.referrals['a']}", headers=staff, json={})
    assert write.status_code == 405 and outcome(valid(write.get_json()))[0] == "not-supported"
    assert "GET" in write.headers["Allow"]


def test_too_many_failed_attempts_is_a_429_outcome(referral_settings):
    """The failed-authentication limiter turns a 401 into a 429 after the view has answered
    (services/common/auth.py's after-request hook): still an OperationOutcome, Retry-After kept."""
    import dataclasses

    strict = dataclasses.replace(referral_settings, auth_failures_per_address=2)
    address = f"10.99.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    with flask_app(create_app, strict) as limited:
        client = limited.test_client()
        statuses = []
        for attempt in range(4):
            response = client.get(f"{BASE}/Slot", environ_base={"REMOTE_ADDR": address},
                                  headers={"Authorization": f"Bearer staff_wrong-{attempt}-{uuid.uuid4().hex}"})
            statuses.append(response.status_code)
            assert response.content_type == FHIR_JSON
        assert statuses[0] == 401 and statuses[-1] == 429, statuses
        assert outcome(valid(response.get_json()))[0] == "throttled"
        assert int(response.headers["Retry-After"]) > 0
