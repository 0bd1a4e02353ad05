"""Limits on failed authentication and the per-kiosk quota, on the intake API served as
`make run` serves it: two gunicorn servers (each with gunicorn_conf's two worker processes)
on one database, so a limit reached through one process holds in every other. Clients
talk from their own loopback addresses (127.x.y.z), so each test has addresses of its own.
Also: every 401/403 is logged with the credential's id, never the secret or its hash; and
the kiosk setup page's staff check."""
from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.intake_support import kiosk_report_ids, new_kiosk, report_body, revoke, staff_headers

from infra.postgres import free_port
from services.common.auth import hash_secret

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PER_ADDRESS = 5
PER_CREDENTIAL = 3
QUOTA = 3


def start_gunicorn(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**env, "CLINIC_SERVICE": "intake", "CLINIC_BIND": f"127.0.0.1:{port}"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:services.common.gunicorn_conf",
             "services.intake.app:create_app()"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, port


@pytest.fixture(scope="module")
def servers(stack_env, intake_settings, tmp_path_factory):
    """Two gunicorn servers (2 worker processes each) with small limits; yields [(port, log path)]."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")}, **stack_env,
           "CLINIC_AUTH_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
           "CLINIC_AUTH_FAILURES_PER_CREDENTIAL": str(PER_CREDENTIAL),
           "CLINIC_KIOSK_REPORTS_PER_HOUR": str(QUOTA)}
    folder = tmp_path_factory.mktemp("gunicorn-limits")
    started = [(*start_gunicorn(env, folder / f"intake-{i}.log"), folder / f"intake-{i}.log") for i in range(2)]
    try:
        for proc, port, log_path in started:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"gunicorn exited: {log_path.read_text()[-2000:]}"
                try:
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass
                assert time.monotonic() < deadline, f"gunicorn not up: {log_path.read_text()[-2000:]}"
                time.sleep(0.2)
        yield [(port, log_path) for _proc, port, log_path in started]
    finally:
        for proc, _port, _log in started:
            proc.send_signal(signal.SIGTERM)
        for proc, _port, _log in started:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_addresses = itertools.count(random.randrange(0, 50) * 254 * 254)


def new_address() -> str:
    n = next(_addresses)
    return f"127.{100 + n // (254 * 254) % 100}.{n // 254 % 254 + 1}.{n % 254 + 1}"


def call(port: int, method: str, path: str, *, source: str, token: str | None = None, body: dict | None = None,
         headers: dict | None = None):
    """(status, headers, JSON body) of one request sent from the loopback address `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body if body is not None else {}), headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, (json.loads(raw) if raw else None)
    finally:
        conn.close()


def post_report(port: int, source: str, token: str, body: dict | None = None):
    return call(port, "POST", "/v1/reports", source=source, token=token, body=body if body is not None else {})


def assert_limited(status, headers, body, code="too_many_failed_attempts", window=300):
    assert status == 429, (status, body)
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert 0 < int(headers["retry-after"]) <= window


def test_failures_are_limited_per_address_across_processes(servers):
    address = new_address()
    ports = itertools.cycle(port for port, _ in servers)
    statuses = [post_report(next(ports), address, f"kiosk_guess-{uuid.uuid4().hex}")[0] for _ in range(PER_ADDRESS)]
    assert statuses == [401] * PER_ADDRESS
    # Past the limit: 429 from either server, whichever worker process answers.
    for _ in range(6):
        assert_limited(*post_report(next(ports), address, f"kiosk_guess-{uuid.uuid4().hex}"))
    # Another address is not limited.
    assert post_report(servers[0][0], new_address(), f"kiosk_guess-{uuid.uuid4().hex}")[0] == 401


def test_failures_are_limited_per_credential_across_addresses(servers, intake_settings):
    kiosk = new_kiosk(intake_settings)
    revoke(intake_settings, kiosk)
    ports = itertools.cycle(port for port, _ in servers)
    statuses = [post_report(next(ports), new_address(), kiosk.key)[0] for _ in range(PER_CREDENTIAL)]
    assert statuses == [401] * PER_CREDENTIAL
    assert_limited(*post_report(next(ports), new_address(), kiosk.key))
    assert_limited(*post_report(next(ports), new_address(), kiosk.key))


def test_a_limited_address_does_not_stop_good_kiosks_elsewhere(servers, intake_settings):
    limited = new_address()
    for _ in range(PER_ADDRESS + 1):
        post_report(servers[0][0], limited, f"kiosk_guess-{uuid.uuid4().hex}")
    kiosk = new_kiosk(intake_settings)
    status, _headers, body = post_report(servers[1][0], new_address(), kiosk.key, report_body())
    assert status == 202, body


def test_each_kiosk_has_a_submission_quota(servers, intake_settings):
    kiosk, other = new_kiosk(intake_settings), new_kiosk(intake_settings)
    ports = itertools.cycle(port for port, _ in servers)
    address = new_address()
    statuses = [post_report(next(ports), address, kiosk.key, report_body())[0] for _ in range(QUOTA)]
    assert statuses == [202] * QUOTA
    assert_limited(*post_report(next(ports), address, kiosk.key, report_body()), code="kiosk_quota_exceeded",
                   window=3600)
    assert_limited(*post_report(next(ports), address, kiosk.key, report_body()), code="kiosk_quota_exceeded",
                   window=3600)
    assert post_report(next(ports), address, other.key, report_body())[0] == 202


def kiosk_outbox_count(conn, kiosk) -> int:
    return conn.execute(
        "SELECT count(*) FROM intake.outbox o JOIN intake.reports r ON r.report_id::text = o.key"
        " JOIN intake.kiosks k USING (kiosk_id) WHERE k.name = %s", (kiosk.name,)).fetchone()[0]


def test_a_report_over_the_quota_stores_nothing(servers, intake_settings, intake_conn):
    # A valid report's key, quota and report go to the database in one statement (intake's
    # api/accept.py): the one over the quota must leave no report and no event behind, with or
    # without an Idempotency-Key, and a retry of an accepted one is refused too.
    kiosk = new_kiosk(intake_settings)
    ports = itertools.cycle(port for port, _ in servers)
    address = new_address()
    keys = [f"quota-{uuid.uuid4().hex}" for _ in range(QUOTA + 1)]
    bodies = [report_body() for _ in keys]
    for key, body in zip(keys[:QUOTA], bodies):
        assert call(next(ports), "POST", "/v1/reports", source=address, token=kiosk.key, body=body,
                    headers={"Idempotency-Key": key})[0] == 202
    stored = kiosk_report_ids(intake_conn, kiosk)
    assert len(stored) == QUOTA and kiosk_outbox_count(intake_conn, kiosk) == QUOTA
    assert_limited(*call(next(ports), "POST", "/v1/reports", source=address, token=kiosk.key, body=bodies[QUOTA],
                         headers={"Idempotency-Key": keys[QUOTA]}), code="kiosk_quota_exceeded", window=3600)
    assert_limited(*post_report(next(ports), address, kiosk.key, report_body()), code="kiosk_quota_exceeded",
                   window=3600)
    assert_limited(*call(next(ports), "POST", "/v1/reports", source=address, token=kiosk.key, body=bodies[0],
                         headers={"Idempotency-Key": keys[0]}), code="kiosk_quota_exceeded", window=3600)
    assert kiosk_report_ids(intake_conn, kiosk) == stored and kiosk_outbox_count(intake_conn, kiosk) == QUOTA


def test_refused_reports_count_towards_the_quota(servers, intake_settings, intake_conn):
    # The quota counts every request of a key in force, whatever its answer: a 422 (checked key
    # first, then the body) and a 415 count as a 202 (key, quota and report in one statement) does.
    kiosk = new_kiosk(intake_settings)
    ports = itertools.cycle(port for port, _ in servers)
    address = new_address()
    invalid = {**report_body(), "pain": {"severity": 11}}
    assert post_report(next(ports), address, kiosk.key, invalid)[0] == 422
    assert call(next(ports), "POST", "/v1/reports", source=address, token=kiosk.key, body=report_body(),
                headers={"Content-Type": "text/plain"})[0] == 415
    statuses = [post_report(next(ports), address, kiosk.key, report_body())[0] for _ in range(QUOTA - 1)]
    assert statuses == [202] * (QUOTA - 2) + [429]
    assert len(kiosk_report_ids(intake_conn, kiosk)) == QUOTA - 2


def log_records(servers) -> list[dict]:
    records = []
    for _port, log_path in servers:
        for line in log_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    return records


def test_every_refusal_is_logged_with_the_credential_id_never_the_secret(servers, intake_settings):
    from services.admin.credentials import staff_add, staff_revoke

    kiosk = new_kiosk(intake_settings)
    revoke(intake_settings, kiosk)
    leaver = f"leaver-{uuid.uuid4().hex[:8]}"
    revoked_staff = staff_add(intake_settings, leaver, "scheduler")
    staff_revoke(intake_settings, leaver)
    port = servers[0][0]
    unknown = f"kiosk_unknown-{uuid.uuid4().hex}"
    staff = staff_headers(intake_settings, "scheduler")["Authorization"].split(" ", 1)[1]
    assert post_report(port, new_address(), kiosk.key)[0] == 401
    assert post_report(port, new_address(), unknown)[0] == 401
    assert post_report(port, new_address(), staff)[0] == 401  # a staff token is not a kiosk key
    assert call(port, "POST", "/kiosk/setup/staff-check", source=new_address(), token=revoked_staff)[0] == 401
    kiosk_id, staff_id = _ids(intake_settings, kiosk.name, leaver)

    deadline = time.monotonic() + 10
    while True:
        refused = [r for r in log_records(servers) if r.get("message") == "access refused"]
        by_id = {r.get("credential_id"): r for r in refused}
        if {kiosk_id, staff_id} <= set(by_id) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert by_id[kiosk_id]["endpoint"] == "/v1/reports" and by_id[kiosk_id]["credential_kind"] == "kiosk_key"
    assert by_id[staff_id]["endpoint"] == "/kiosk/setup/staff-check"
    assert by_id[staff_id]["credential_kind"] == "staff_token"
    assert all(r["status"] == 401 and r["client"].startswith("127.") for r in (by_id[kiosk_id], by_id[staff_id]))
    assert any(r["credential_kind"] == "bearer" and r["credential_id"] is None for r in refused)
    text = "".join(log_path.read_text() for _port, log_path in servers)
    for secret in (kiosk.key, unknown, staff, revoked_staff):
        assert secret not in text and hash_secret(secret) not in text
        assert hash_secret(secret)[:16] not in text


def _ids(settings, kiosk_name: str, staff_name: str) -> tuple[str, str]:
    import psycopg

    with psycopg.connect(settings.database_url) as conn:
        kiosk_id = conn.execute("SELECT kiosk_id::text FROM intake.kiosks WHERE name = %s", (kiosk_name,)).fetchone()
        staff_id = conn.execute("SELECT staff_id::text FROM identity.staff WHERE name = %s", (staff_name,)).fetchone()
    return kiosk_id[0], staff_id[0]


def test_the_kiosk_setup_staff_check(servers, intake_settings):
    from services.admin.credentials import staff_add, staff_revoke

    port = servers[1][0]
    kiosk = new_kiosk(intake_settings)
    name = f"setup-{uuid.uuid4().hex[:8]}"
    token = staff_add(intake_settings, name, "scheduler")
    admin = staff_add(intake_settings, f"setup-admin-{uuid.uuid4().hex[:8]}", "admin")
    check = lambda key: call(port, "POST", "/kiosk/setup/staff-check", source=new_address(), token=key)  # noqa: E731
    assert check(token)[0] == 204
    assert check(admin)[0] == 204
    assert check(kiosk.key)[0] == 401
    assert check(None)[0] == 401
    staff_revoke(intake_settings, name)
    assert check(token)[0] == 401
