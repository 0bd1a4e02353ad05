"""The FHIR interface in the access audit (services/common/audit.py), on the real PostgreSQL:
a read of a referral's resources is one `read` row, a search one `list` row naming every
referral it returned and their patients' MRNs; slots and providers hold no patient data and
are not audited; a 404 showed nothing; a read whose row cannot be written is refused."""
from __future__ import annotations

import uuid

import pytest

from services.admin.credentials import staff_add
from services.common import audit as audit_module
from services.referral.app import create_app
from tests.app_support import flask_app
from tests.fhir_support import BASE, build_clinic, valid

pytestmark = pytest.mark.integration

CLIENT = "10.20.30.41"
TRACE_ID = uuid.uuid4().hex
ROW = "staff_name, channel, action, record_type, record_ids::text[], patient_mrns, endpoint, traceparent," \
      " host(client_addr)"


@pytest.fixture(scope="module")
def app(referral_settings):
    with flask_app(create_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def clinic(referral_settings):
    return build_clinic(referral_settings)


@pytest.fixture
def staff(referral_settings):
    name = f"fhir-audit-{uuid.uuid4().hex[:8]}"
    return name, {"Authorization": f"Bearer {staff_add(referral_settings, name, 'admin')}",
                  "traceparent": f"00-{TRACE_ID}-{uuid.uuid4().hex[:16]}-01"}


def rows_of(admin_conn, staff_name: str) -> list[dict]:
    cur = admin_conn.execute(f"SELECT {ROW} FROM audit.access WHERE staff_name = %s ORDER BY audit_id",
                             (staff_name,))
    return [dict(zip([c.name for c in cur.description], row)) for row in cur.fetchall()]


def fetch(client, headers, path: str, status: int = 200) -> dict:
    response = client.get(BASE + path, headers=headers, environ_base={"REMOTE_ADDR": CLIENT})
    assert response.status_code == status, response.get_data(as_text=True)
    return valid(response.get_json())


@pytest.mark.parametrize("path", ["/ServiceRequest/{id}", "/Appointment/{id}", "/Patient/{id}",
                                  "/ServiceRequest/{id}/_history"])
def test_a_read_of_a_referrals_resource_is_one_read_row(client, staff, clinic, admin_conn, path):
    name, headers = staff
    referral_id = clinic.referrals["a"]
    fetch(client, headers, path.format(id=referral_id))
    [row] = rows_of(admin_conn, name)
    rule = BASE + path.replace("{id}", "<referral_id>")
    assert {k: v for k, v in row.items() if k != "traceparent"} == {
        "staff_name": name, "channel": "api", "action": "read", "record_type": "referral",
        "record_ids": [referral_id], "patient_mrns": [clinic.mrns["a"]], "endpoint": f"GET {rule}",
        "host": CLIENT}
    assert row["traceparent"].split("-")[1] == TRACE_ID
    fetch(client, headers, path.format(id=uuid.uuid4()), 404)  # showed nothing: no row
    assert len(rows_of(admin_conn, name)) == 1


@pytest.mark.parametrize(("resource", "query", "names"), [
    ("ServiceRequest", "patient.identifier={mrn_b}", ("b2", "b")),
    ("Appointment", "patient=Patient/{b}", ("b",)),
    ("ServiceRequest", "patient.identifier=nobody-{mrn_b}", ()),
])
def test_a_search_is_one_list_row_naming_what_it_returned(client, staff, clinic, admin_conn, resource, query,
                                                           names):
    name, headers = staff
    bundle = fetch(client, headers, f"/{resource}?" + query.format(mrn_b=clinic.mrns["b"], b=clinic.referrals["b"]))
    returned = [entry["resource"]["id"] for entry in bundle.get("entry", [])]
    assert returned == [clinic.referrals[n] for n in names]
    [row] = rows_of(admin_conn, name)
    assert (row["action"], row["record_type"], row["record_ids"], row["patient_mrns"], row["endpoint"]) == (
        "list", "referral", returned, [clinic.mrns["b"]] if names else [], f"GET {BASE}/{resource}")


def test_slots_and_providers_are_not_audited(client, staff, clinic, admin_conn):
    name, headers = staff
    provider = clinic.provider["provider_id"]
    for path in (f"/Slot/{clinic.slots[0]}", f"/Slot?schedule=Schedule/{provider}", f"/Schedule/{provider}",
                 f"/HealthcareService/{provider}", f"/Location/{provider}", "/metadata"):
        fetch(client, headers, path)
    assert rows_of(admin_conn, name) == []


def test_a_read_whose_row_cannot_be_written_is_refused(client, staff, clinic, admin_conn, monkeypatch):
    name, headers = staff
    monkeypatch.setattr(audit_module, "_INSERT", audit_module._INSERT.replace("client_addr)", "no_such_column)"))
    for path in (f"/ServiceRequest/{clinic.referrals['a']}", f"/ServiceRequest?patient={clinic.referrals['a']}"):
        body = fetch(client, headers, path, 503)
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "transient"
        assert clinic.mrns["a"] not in str(body)
    assert rows_of(admin_conn, name) == []

