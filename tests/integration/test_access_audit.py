"""The access audit (issue 13 part 4) on the real PostgreSQL: every staff read or change of
a referral, a report or a decision appends one row to audit.access (who, role, what, which
record, when, from where), in the change's own transaction, before a read is answered; no
service role may read, update, delete or truncate it; `clinic audit` shows it."""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.app_support import flask_app, role_conn
from tests.intake_support import report_body
from tests.referral_support import decide, mrn, referral_for_report
from tests.triage_support import clinical, decide_as_worker, report_event

from services.admin.credentials import kiosk_add, staff_add
from services.common import audit as audit_module
from services.referral.app import create_app as create_referral_app
from services.triage.app import create_app as create_triage_app

pytestmark = pytest.mark.integration

CLINIC = os.path.join(os.path.dirname(sys.executable), "clinic")
CLIENT = "10.20.30.40"
TRACE_ID = uuid.uuid4().hex
TRACEPARENT = f"00-{TRACE_ID}-{uuid.uuid4().hex[:16]}-01"
ROW = ("db_role, staff_id::text, staff_name, staff_role, channel, background, action, record_type,"
       " record_ids::text[], patient_mrns, endpoint, traceparent, host(client_addr), at")


# -- apps, people and helpers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def referral_app(referral_settings):
    with flask_app(create_referral_app, referral_settings) as app:
        yield app


@pytest.fixture(scope="module")
def triage_app(triage_settings):
    with flask_app(create_triage_app, triage_settings) as app:
        yield app


@pytest.fixture
def staff(referral_settings):
    """A fresh scheduler: (name, staff id, bearer headers)."""
    name = f"audit-sched-{uuid.uuid4().hex[:8]}"
    token = staff_add(referral_settings, name, "scheduler")
    with contextlib.closing(psycopg.connect(referral_settings.admin_database_url)) as conn:
        staff_id = conn.execute("SELECT staff_id::text FROM identity.staff WHERE name = %s", (name,)).fetchone()[0]
    return name, staff_id, token, {"Authorization": f"Bearer {token}"}


def rows_of(admin_conn, staff_name: str) -> list[dict]:
    cur = admin_conn.execute(f"SELECT {ROW} FROM audit.access WHERE staff_name = %s ORDER BY audit_id",
                             (staff_name,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def rows_for_record(admin_conn, record_id: str) -> list[dict]:
    cur = admin_conn.execute(f"SELECT {ROW} FROM audit.access WHERE record_ids @> ARRAY[%s::uuid]"
                             " ORDER BY audit_id", (record_id,))
    names = [c.name for c in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def from_client(**headers) -> dict:
    return {"headers": {"traceparent": TRACEPARENT, **headers}, "environ_base": {"REMOTE_ADDR": CLIENT}}


def a_referral(ref_conn, now) -> tuple[str, str]:
    """An urgent referral (waitlisted: no slots in this test's time bubble): (referral id, MRN)."""
    patient = mrn()
    report_id = decide(ref_conn, "urgent", patient, now)
    return referral_for_report(ref_conn, report_id)["referral_id"], patient


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


# -- reads ---------------------------------------------------------------------------------------
def test_a_staff_read_of_a_referral_appends_exactly_one_row(referral_app, staff, ref_conn, now, admin_conn):
    name, staff_id, _token, headers = staff
    referral_id, patient = a_referral(ref_conn, now)
    options = from_client(**headers)
    response = referral_app.test_client().get(f"/v1/referrals/{referral_id}", **options)
    assert response.status_code == 200, response.get_json()
    [row] = rows_of(admin_conn, name)
    assert row["at"] is not None
    del row["at"]
    assert row == {"db_role": "referral", "staff_id": staff_id, "staff_name": name, "staff_role": "scheduler",
                   "channel": "api", "background": False, "action": "read", "record_type": "referral",
                   "record_ids": [referral_id], "patient_mrns": [patient],
                   "endpoint": "GET /v1/referrals/<referral_id>", "traceparent": row["traceparent"],
                   "host": CLIENT}
    assert row["traceparent"].split("-")[1] == TRACE_ID  # the caller's trace, a span of our own
    # A 404 showed nothing: no row.
    assert referral_app.test_client().get(f"/v1/referrals/{uuid.uuid4()}", **options).status_code == 404
    assert len(rows_of(admin_conn, name)) == 1


def test_a_list_request_is_one_row_naming_every_referral_it_returned(referral_app, staff, ref_conn, now,
                                                                      admin_conn):
    name, _staff_id, _token, headers = staff
    referral_id, patient = a_referral(ref_conn, now)
    report_id = ref_conn.execute("SELECT report_id::text FROM referral.referral_reports WHERE referral_id = %s",
                                 (referral_id,)).fetchone()[0]
    response = referral_app.test_client().get(f"/v1/referrals?report_id={report_id}", **from_client(**headers))
    assert [i["referral_id"] for i in response.get_json()["items"]] == [referral_id]
    [row] = rows_of(admin_conn, name)
    assert (row["action"], row["record_type"], row["record_ids"], row["patient_mrns"], row["endpoint"]) == (
        "list", "referral", [referral_id], [patient], "GET /v1/referrals")


def test_a_queue_page_view_appends_one_row_from_the_page(referral_app, staff, ref_conn, now, admin_conn):
    name, _staff_id, token, _headers = staff
    referral_id, patient = a_referral(ref_conn, now)
    report_id = ref_conn.execute("SELECT report_id::text FROM referral.referral_reports WHERE referral_id = %s",
                                 (referral_id,)).fetchone()[0]
    browser = referral_app.test_client()
    form = browser.get("/queue", base_url="http://localhost").get_data(as_text=True)
    signed_in = browser.post("/queue/sign-in", data={"token": token, "csrf_token": csrf_of(form)},
                             base_url="http://localhost", environ_base={"REMOTE_ADDR": CLIENT})
    assert signed_in.status_code == 303
    page = browser.get("/queue", base_url="http://localhost", environ_base={"REMOTE_ADDR": CLIENT})
    assert page.status_code == 200 and name in page.get_data(as_text=True)
    assert rows_of(admin_conn, name) == []  # the page's HTML holds no patient data
    # What the page's script then reads, with the session cookie: one row, from the page.
    listed = browser.get(f"/v1/referrals?report_id={report_id}", base_url="http://localhost",
                         environ_base={"REMOTE_ADDR": CLIENT})
    assert [i["referral_id"] for i in listed.get_json()["items"]] == [referral_id]
    [row] = rows_of(admin_conn, name)
    assert (row["channel"], row["background"], row["action"], row["record_ids"], row["patient_mrns"],
            row["host"]) == ("page", False, "list", [referral_id], [patient], CLIENT)
    # The page's own periodic refresh is a read too, marked as such; refreshes showing the same
    # records and patients again are not audited again within the window, the person's own are.
    def load(**headers):
        response = browser.get(f"/v1/referrals?report_id={report_id}", base_url="http://localhost",
                               headers=headers, environ_base={"REMOTE_ADDR": CLIENT})
        assert [i["referral_id"] for i in response.get_json()["items"]] == [referral_id]

    load(**{"X-Clinic-Background": "1"})
    load(**{"X-Clinic-Background": "1"})
    assert [(r["channel"], r["background"]) for r in rows_of(admin_conn, name)] == [("page", False),
                                                                                    ("page", True)]
    load()
    assert [(r["channel"], r["background"]) for r in rows_of(admin_conn, name)] == [
        ("page", False), ("page", True), ("page", False)]
    # A refresh that shows something else (here: nothing, under another filter) is audited.
    emptied = browser.get(f"/v1/referrals?report_id={report_id}&status=booked", base_url="http://localhost",
                          headers={"X-Clinic-Background": "1"}, environ_base={"REMOTE_ADDR": CLIENT})
    assert emptied.get_json()["items"] == []
    last = rows_of(admin_conn, name)[-1]
    assert (last["background"], last["action"], last["record_ids"], last["patient_mrns"]) == (True, "list", [], [])


def test_a_staff_read_of_a_report_is_audited_and_a_kiosk_reading_its_own_is_not(intake_app, intake_settings,
                                                                                 staff, admin_conn):
    name, staff_id, _token, headers = staff
    kiosk = {"Authorization": f"Bearer {kiosk_add(intake_settings, f'audit-kiosk-{uuid.uuid4().hex[:8]}')}"}
    client = intake_app.test_client()
    body = report_body()
    accepted = client.post("/v1/reports", json=body, headers=kiosk)
    assert accepted.status_code == 202, accepted.get_json()
    report_id = accepted.get_json()["report_id"]

    assert client.get(f"/v1/reports/{report_id}", headers=kiosk).status_code == 200
    assert rows_for_record(admin_conn, report_id) == []  # the kiosk's own report: not a staff read

    assert client.get(f"/v1/reports/{report_id}", **from_client(**headers)).status_code == 200
    [row] = rows_for_record(admin_conn, report_id)
    assert (row["db_role"], row["staff_id"], row["staff_name"], row["action"], row["record_type"],
            row["record_ids"], row["patient_mrns"], row["channel"], row["host"], row["endpoint"]) == (
        "intake", staff_id, name, "read", "report", [report_id], [body["patient"]["mrn"]], "api", CLIENT,
        "GET /v1/reports/<report_id>")


def test_a_staff_read_of_a_decision_is_audited(triage_app, triage_conn, rules, staff, admin_conn):
    name, _staff_id, _token, headers = staff
    event = report_event(clinical(severity=8, onset="sudden", trauma=True, locations=("groin",)))
    decide_as_worker(triage_conn, rules, event)
    report_id = event["data"]["report_id"]
    assert triage_app.test_client().get(f"/v1/decisions/{report_id}", **from_client(**headers)).status_code == 200
    [row] = rows_of(admin_conn, name)
    assert (row["db_role"], row["action"], row["record_type"], row["record_ids"], row["patient_mrns"],
            row["host"]) == ("triage", "read", "decision", [report_id], [], CLIENT)


def test_a_client_address_that_is_not_an_ip_address_is_left_blank_not_refused(triage_app, triage_conn, rules,
                                                                              staff, admin_conn):
    name, _staff_id, _token, headers = staff
    event = report_event(clinical())
    decide_as_worker(triage_conn, rules, event)
    response = triage_app.test_client().get(f"/v1/decisions/{event['data']['report_id']}", headers=headers,
                                            environ_base={"REMOTE_ADDR": "unix:/run/gunicorn.sock"})
    assert response.status_code == 200
    [row] = rows_of(admin_conn, name)
    assert (row["action"], row["host"]) == ("read", None)


def test_a_read_whose_audit_row_cannot_be_written_is_refused(referral_app, staff, ref_conn, now, admin_conn,
                                                            monkeypatch):
    name, _staff_id, _token, headers = staff
    referral_id, _patient = a_referral(ref_conn, now)
    monkeypatch.setattr(audit_module, "_INSERT", audit_module._INSERT.replace("client_addr)", "no_such_column)"))
    response = referral_app.test_client().get(f"/v1/referrals/{referral_id}", **from_client(**headers))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "audit_unavailable"
    assert "patient" not in response.get_json()
    assert rows_of(admin_conn, name) == []


# -- changes -------------------------------------------------------------------------------------
def test_a_change_is_audited_in_its_own_transaction(referral_app, staff, ref_conn, now, admin_conn, monkeypatch):
    name, _staff_id, _token, headers = staff
    client = referral_app.test_client()
    referral_id, patient = a_referral(ref_conn, now)

    # The audit row is written, then the transaction fails: neither the change nor the row stays.
    real_record = audit_module.record

    def record_then_fail(*args, **kwargs):
        real_record(*args, **kwargs)
        raise RuntimeError("fails after the audit row, before the commit")

    monkeypatch.setattr(audit_module, "record", record_then_fail)
    failed = client.post(f"/v1/referrals/{referral_id}/cancel", json={"reason": "patient called"},
                         **from_client(**headers))
    assert failed.status_code == 500
    monkeypatch.undo()
    assert referral_for_report(ref_conn, ref_conn.execute(
        "SELECT report_id::text FROM referral.referral_reports WHERE referral_id = %s",
        (referral_id,)).fetchone()[0])["status"] == "waitlisted"
    assert rows_of(admin_conn, name) == []

    # An audit row that cannot be written stops the change too.
    monkeypatch.setattr(audit_module, "_INSERT", audit_module._INSERT.replace("client_addr)", "no_such_column)"))
    refused = client.post(f"/v1/referrals/{referral_id}/cancel", json={"reason": "patient called"},
                          **from_client(**headers))
    assert refused.status_code == 503 and refused.get_json()["error"]["code"] == "audit_unavailable"
    monkeypatch.undo()
    assert ref_conn.execute("SELECT status FROM referral.referrals WHERE referral_id = %s",
                            (referral_id,)).fetchone() == ("waitlisted",)
    assert rows_of(admin_conn, name) == []

    # The change that goes through: one row, the change's own trace, and nothing else.
    done = client.post(f"/v1/referrals/{referral_id}/cancel", json={"reason": "patient called"},
                       **from_client(**headers))
    assert done.status_code == 200 and done.get_json()["status"] == "cancelled"
    [row] = rows_of(admin_conn, name)
    assert (row["action"], row["record_type"], row["record_ids"], row["patient_mrns"], row["endpoint"],
            row["host"]) == ("cancel", "referral", [referral_id], [patient],
                             "POST /v1/referrals/<referral_id>/cancel", CLIENT)
    [(event_traceparent,)] = ref_conn.execute(
        "SELECT traceparent FROM referral.outbox WHERE payload->>'subject' = %s AND payload->>'type' = %s",
        (referral_id, "referral.cancelled")).fetchall()
    assert row["traceparent"] == event_traceparent

    # A refused change (409) changed nothing and showed nothing: no row.
    again = client.post(f"/v1/referrals/{referral_id}/cancel", json={"reason": "twice"}, **from_client(**headers))
    assert again.status_code == 409
    assert len(rows_of(admin_conn, name)) == 1


# -- append-only -----------------------------------------------------------------------------------
STATEMENTS = {
    "SELECT": "SELECT count(*) FROM audit.access",
    "UPDATE": "UPDATE audit.access SET staff_name = 'someone else'",
    "DELETE": "DELETE FROM audit.access",
    "TRUNCATE": "TRUNCATE audit.access",
    "backdated INSERT": "INSERT INTO audit.access (at, staff_id, staff_name, staff_role, channel, action,"
                        " record_type, record_ids, endpoint) VALUES (now() - interval '1 year',"
                        " gen_random_uuid(), 'x', 'admin', 'api', 'read', 'referral', '{}', 'GET /')",
}


@pytest.mark.parametrize("service", ["intake", "triage", "referral"])
@pytest.mark.parametrize("what", list(STATEMENTS))
def test_no_service_role_may_read_or_alter_the_audit(migrated_settings, service, what, admin_conn):
    before = admin_conn.execute("SELECT count(*), max(audit_id) FROM audit.access").fetchone()
    with role_conn(migrated_settings(service)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            conn.execute(STATEMENTS[what])
    assert admin_conn.execute("SELECT count(*), max(audit_id) FROM audit.access").fetchone() == before


def test_the_admin_cannot_rewrite_it_either_without_dropping_the_triggers(admin_conn):
    [(audit_id,)] = admin_conn.execute(
        "INSERT INTO audit.access (staff_id, staff_name, staff_role, channel, action, record_type, record_ids,"
        " endpoint) VALUES (gen_random_uuid(), 'audit-test', 'admin', 'api', 'read', 'referral', '{}', 'GET /')"
        " RETURNING audit_id").fetchall()
    for statement in (f"UPDATE audit.access SET staff_name = 'someone else' WHERE audit_id = {audit_id}",
                      f"DELETE FROM audit.access WHERE audit_id = {audit_id}", "TRUNCATE audit.access"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            admin_conn.execute(statement)


# -- clinic audit -------------------------------------------------------------------------------
@pytest.fixture
def clinic(stack_env):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLINIC, *args], env={**os.environ, **stack_env}, capture_output=True, text=True,
                              timeout=60)

    return run


def test_clinic_audit_by_patient_and_by_staff(clinic, intake_app, intake_settings, triage_app, triage_conn, rules,
                                             referral_app, ref_conn, now, staff):
    name, _staff_id, _token, headers = staff
    kiosk = {"Authorization": f"Bearer {kiosk_add(intake_settings, f'audit-kiosk-{uuid.uuid4().hex[:8]}')}"}
    body = report_body()
    patient = body["patient"]["mrn"]
    report_id = intake_app.test_client().post("/v1/reports", json=body, headers=kiosk).get_json()["report_id"]
    assert intake_app.test_client().get(f"/v1/reports/{report_id}", **from_client(**headers)).status_code == 200
    # Triage's decision on that report (no MRN in triage): found through the report id.
    event = report_event(clinical(severity=8, onset="sudden", trauma=True, locations=("groin",)), report_id=report_id)
    decide_as_worker(triage_conn, rules, event)
    assert triage_app.test_client().get(f"/v1/decisions/{report_id}", **from_client(**headers)).status_code == 200
    # Referral's referral for the patient, read through the API.
    referral_report = decide(ref_conn, "urgent", patient, now)
    referral_id = referral_for_report(ref_conn, referral_report)["referral_id"]
    assert referral_app.test_client().get(f"/v1/referrals/{referral_id}", **from_client(**headers)).status_code == 200

    # By patient, as typed differently (case, spaces): newest first.
    by_patient = clinic("audit", "--patient", f"  {patient.lower()} ")
    assert by_patient.returncode == 0, by_patient.stderr
    lines = by_patient.stdout.splitlines()
    assert lines[0].split() == ["at", "(UTC)", "staff", "action", "record", "patient", "MRN", "from", "trace", "id"]
    assert len(lines) == 4, by_patient.stdout
    assert f"referral {referral_id}" in lines[1] and f"decision {report_id}" in lines[2]
    assert f"report {report_id}" in lines[3]
    for line in lines[1:]:
        assert f"{name} (scheduler)" in line and "read" in line and f"{CLIENT} (api)" in line and TRACE_ID in line
    assert patient in lines[1] and patient in lines[3]

    # By staff, with a limit.
    by_staff = clinic("audit", "--staff", name, "--limit", "2")
    assert by_staff.returncode == 0, by_staff.stderr
    lines = by_staff.stdout.splitlines()
    assert len(lines) == 4 and lines[3] == "(the newest 2; --limit N for more)"
    assert f"referral {referral_id}" in lines[1] and f"decision {report_id}" in lines[2]

    nobody = clinic("audit", "--staff", f"nobody-{uuid.uuid4().hex[:6]}")
    assert (nobody.returncode, nobody.stdout.strip()) == (0, "no audited access")
    assert clinic("audit").returncode == 2  # --patient or --staff is required
