"""A database per service (issue 16; docs/database-per-service.md): intake, triage and referral
each on a PostgreSQL server of its own, started by the project's runner (infra/postgres.py),
made by `clinic db bootstrap`, with a broker of the test's own; the services as processes, as
`make run` starts them, each given only its own database's URL.

The shared admin URL points at nothing: whatever still assumed one server would fail here.
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from infra.kafka.runner import LocalKafka
from infra.postgres import free_port, running_postgres
from services.common.settings import SERVICES, load
from tests.gunicorn_support import running_gunicorn
from tests.live_stack import free_port_pair, kafka_lib_dir
from tests.process_support import stop

from .flow_helpers import URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CLINIC = Path(sys.executable).parent / "clinic"
NOWHERE = "postgresql://clinic_admin:none@127.0.0.1:{port}/nowhere"  # no server listens there


# -- the settings alone --------------------------------------------------------------------
def test_one_server_is_one_database_and_the_admin_url_is_left_as_given(tmp_path):
    settings = load(env={"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_ADMIN_DATABASE_URL": "postgresql://adm:pw@db:5432/c",
                         "CLINIC_PG_HOST": "db", "CLINIC_PG_PORT": "5432", "CLINIC_DB_NAME": "c"})
    assert [d.services for d in settings.databases()] == [SERVICES]
    assert {settings.admin_url(s) for s in SERVICES} == {"postgresql://adm:pw@db:5432/c"}


def test_a_service_on_its_own_server_gets_the_admin_login_there_unless_given_its_own(tmp_path):
    env = {"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_ADMIN_DATABASE_URL": "postgresql://adm:pw@db:5432/c",
           "CLINIC_PG_HOST": "db", "CLINIC_PG_PORT": "5432", "CLINIC_DB_NAME": "c",
           "CLINIC_REFERRAL_DATABASE_URL": "postgresql://referral:r@db2:6543/ref",
           "CLINIC_TRIAGE_DATABASE_URL": "postgresql://triage:t@db3/tri",
           "CLINIC_TRIAGE_ADMIN_DATABASE_URL": "postgresql://root:x@db3/tri"}
    settings = load(env=env)
    assert [d.services for d in settings.databases()] == [("intake",), ("triage",), ("referral",)]
    assert settings.admin_url("intake") == "postgresql://adm:pw@db:5432/c"
    assert psycopg.conninfo.conninfo_to_dict(settings.admin_url("referral")) == {
        "user": "adm", "password": "pw", "host": "db2", "port": "6543", "dbname": "ref"}
    assert settings.admin_url("triage") == "postgresql://root:x@db3/tri"


def test_two_services_sharing_a_database_are_made_together(tmp_path):
    settings = load(env={"CLINIC_STATE_DIR": str(tmp_path), "CLINIC_PG_HOST": "db", "CLINIC_PG_PORT": "5432",
                         "CLINIC_INTAKE_DATABASE_URL": "postgresql://intake:i@kiosks:5432/clinic"})
    assert [d.services for d in settings.databases()] == [("intake",), ("triage", "referral")]


def test_a_url_without_a_database_names_its_users_as_libpq_does(tmp_path):
    settings = load(env={"CLINIC_STATE_DIR": str(tmp_path),
                         "CLINIC_INTAKE_DATABASE_URL": "postgresql://intake:i@db:5432",
                         "CLINIC_TRIAGE_DATABASE_URL": "postgresql://triage:t@db:5432",
                         "CLINIC_REFERRAL_DATABASE_URL": "postgresql://referral:r@db:5432/triage"})
    assert [d.services for d in settings.databases()] == [("intake",), ("triage", "referral")]


# -- three servers -------------------------------------------------------------------------
class SplitStack:
    def __init__(self, servers: dict, env: dict[str, str]):
        self.servers = servers  # service -> LocalPostgres
        self.env = env
        self.base_url: dict[str, str] = {}

    def clinic(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(CLINIC), *args], env=env or self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        if check:
            assert done.returncode == 0, f"clinic {' '.join(args)}: {done.stderr}"
        return done

    def admin(self, service: str) -> psycopg.Connection:
        return psycopg.connect(self.servers[service].admin_url(), autocommit=True)

    def staff_copies(self) -> dict[str, list[tuple]]:
        result = {}
        for service in SERVICES:
            with self.admin(service) as conn:
                result[service] = conn.execute("SELECT staff_id, name, role, token_hash, revoked_at IS NOT NULL"
                                               " FROM identity.staff ORDER BY name").fetchall()
        return result


def _process_env(env: dict[str, str], service: str) -> dict[str, str]:
    """A service's processes know only their own database (the others' URLs are dropped)."""
    own = {k: v for k, v in env.items() if not k.endswith("DATABASE_URL")}
    return {**own, "CLINIC_DATABASE_URL": env[f"CLINIC_{service.upper()}_DATABASE_URL"]}


@contextlib.contextmanager
def _worker(service: str, env: dict[str, str], log_path: Path):
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(CLINIC), "worker", service], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                env={**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
                                     **_process_env(env, service), "CLINIC_SERVICE": service})
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def split():
    with contextlib.ExitStack() as stack:
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clinic-split-")))
        os.chmod(state, 0o711)  # the servers may run as `postgres` (infra/postgres.py)
        # One after the other, from this thread: the servers stop when the thread that
        # started them ends (infra/lifeline.py), so no pool of threads here.
        servers = {svc: stack.enter_context(running_postgres(bootstrap=False, dbname=f"clinic_{svc}"))
                   for svc in SERVICES}
        kafka = LocalKafka(state, port=free_port_pair(), lib_dir=kafka_lib_dir())
        stack.enter_context(kafka.running())
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
               "CLINIC_STATE_DIR": str(state),  # the broker's principals' passwords, under secrets/
               "CLINIC_KAFKA_BOOTSTRAP": kafka.bootstrap,
               "CLINIC_ADMIN_DATABASE_URL": NOWHERE.format(port=free_port()),
               "CLINIC_PG_PORT": str(free_port()),  # nor there: every URL a service needs is given
               "CLINIC_SECRET_KEY": "split-secret",
               "CLINIC_AUTH_FAILURES_PER_ADDRESS": "100000", "CLINIC_AUTH_FAILURES_PER_CREDENTIAL": "100000"}
        for svc, server in servers.items():
            env[f"CLINIC_{svc.upper()}_DATABASE_URL"] = server.role_url(svc)
            env[f"CLINIC_{svc.upper()}_ADMIN_DATABASE_URL"] = server.admin_url()
        split = SplitStack(servers, env)
        split.clinic("db", "bootstrap")
        logs = state / "logs"
        logs.mkdir(exist_ok=True)
        for svc in SERVICES:
            stack.enter_context(_worker(svc, env, logs / f"{svc}-worker.log"))
        for svc in SERVICES:
            split.base_url[svc] = stack.enter_context(
                running_gunicorn(svc, _process_env(env, svc), logs / f"{svc}-api.log", workers=1, threads=4))
        yield split


def test_each_server_holds_its_own_service_and_a_copy_of_identity_and_audit(split):
    for service, server in split.servers.items():
        with split.admin(service) as conn:
            schemas = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'"
                                                  " AND nspname <> 'information_schema'")}
            roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                                                (list(SERVICES),))}
            database = conn.execute("SELECT current_database()").fetchone()[0]
        assert (schemas, roles, database) == ({"public", service, "identity", "audit"}, {service},
                                              f"clinic_{service}")
    for service, url in split.base_url.items():
        ready = requests.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 200, (service, ready.text)


def test_a_kiosk_report_is_triaged_referred_and_its_outcome_shown_across_three_servers(split):
    key = split.clinic("kiosk", "add", f"kiosk-{uuid.uuid4().hex[:8]}").stdout.strip()
    name = f"scheduler-{uuid.uuid4().hex[:8]}"
    token = split.clinic("staff", "add", name, "--role", "scheduler").stdout.strip()
    staff = {"Authorization": f"Bearer {token}"}
    copies = split.staff_copies()
    assert copies["intake"] == copies["triage"] == copies["referral"], "one staff id, one hash, in every copy"
    assert name in {row[1] for row in copies["intake"]}

    body = report_body(**URGENT)
    accepted = submit(split.base_url["intake"], key, body)
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["report_id"]
    view = wait_for_report(split.base_url["intake"], key, report_id, timeout=120)
    assert view["care_level"] == "urgent" and view["status"] in {"referred", "waitlisted"}, view

    decision = requests.get(f"{split.base_url['triage']}/v1/decisions/{report_id}", headers=staff, timeout=10)
    assert decision.status_code == 200 and decision.json()["care_level"] == "urgent", decision.text
    referrals = requests.get(f"{split.base_url['referral']}/v1/referrals", params={"report_id": report_id},
                             headers=staff, timeout=10)
    assert [r["referral_id"] for r in referrals.json()["items"]] == [view["referral"]["referral_id"]]

    # Each read was audited in its own service's database; `clinic audit` finds both, and the
    # decision read by the patient's MRN (through intake's and referral's report ids).
    read, listed = rf"\bread\s+decision {report_id}\b", r"\blist\s+1 referral\b"
    by_staff = split.clinic("audit", "--staff", name).stdout.splitlines()
    assert len(by_staff) == 3 and re.search(read, by_staff[2]) and re.search(listed, by_staff[1]), by_staff
    by_patient = split.clinic("audit", "--patient", body["patient"]["mrn"]).stdout.splitlines()
    assert len(by_patient) == 3 and re.search(read, by_patient[2]) and re.search(listed, by_patient[1]), by_patient

    split.clinic("staff", "revoke", name)
    for service in SERVICES:
        with split.admin(service) as conn:
            revoked = conn.execute("SELECT revoked_at IS NOT NULL FROM identity.staff WHERE name = %s",
                                   (name,)).fetchone()
        assert revoked == (True,), service
    assert requests.get(f"{split.base_url['triage']}/v1/decisions/{report_id}", headers=staff,
                        timeout=10).status_code == 401
    assert requests.get(f"{split.base_url['referral']}/v1/referrals", headers=staff, timeout=10).status_code == 401


def test_the_operators_commands_reach_each_services_own_database(split):
    kiosk = f"kiosk-{uuid.uuid4().hex[:8]}"
    key = split.clinic("kiosk", "add", kiosk).stdout.strip()
    with split.admin("intake") as conn:
        assert conn.execute("SELECT count(*) FROM intake.kiosks WHERE name = %s", (kiosk,)).fetchone() == (1,)
    split.clinic("kiosk", "revoke", kiosk)
    assert submit(split.base_url["intake"], key, report_body()).status_code == 401

    purge = split.clinic("purge", "--dry-run").stdout
    assert purge.startswith("intake: intake.reports:") and "\nreferral: referral.referrals:" in purge, purge
    replay = split.clinic("rules", "replay")
    assert replay.returncode == 0, replay.stdout

    seeded = split.clinic("demo", "seed", env={**split.env, "CLINIC_DEMO": "1"}).stdout
    assert "provider: " in seeded, seeded
    with split.admin("referral") as conn:
        assert conn.execute("SELECT count(*) FROM referral.slots").fetchone()[0] > 0
    copies = split.staff_copies()
    assert copies["intake"] == copies["triage"] == copies["referral"]
    assert {"demo-scheduler", "demo-admin"} <= {row[1] for row in copies["referral"]}


def test_bootstrap_makes_the_identity_copies_alike_again(split):
    """A copy that missed a member (a database restored from an older dump, say) gets it, and a
    revocation that reached one copy only is made in all."""
    kept, revoked = f"kept-{uuid.uuid4().hex[:8]}", f"revoked-{uuid.uuid4().hex[:8]}"
    for name in (kept, revoked):
        split.clinic("staff", "add", name, "--role", "scheduler")
    with split.admin("triage") as conn:
        conn.execute("DELETE FROM identity.staff WHERE name = %s", (kept,))
    with split.admin("referral") as conn:
        conn.execute("UPDATE identity.staff SET revoked_at = now() WHERE name = %s", (revoked,))

    split.clinic("db", "bootstrap")

    copies = split.staff_copies()
    assert copies["intake"] == copies["triage"] == copies["referral"]
    states = {row[1]: row[4] for row in copies["triage"]}
    assert (states[kept], states[revoked]) == (False, True)


def test_bootstrap_refuses_to_merge_two_different_members_of_one_name(split):
    name = f"twice-{uuid.uuid4().hex[:8]}"
    for service in ("intake", "referral"):  # as two databases made by two different `clinic`s would
        with split.admin(service) as conn:
            conn.execute("INSERT INTO identity.staff (name, role, token_hash) VALUES (%s, 'scheduler', %s)",
                         (name, uuid.uuid4().hex))
    try:
        refused = split.clinic("db", "bootstrap", check=False)
        assert refused.returncode == 1 and "a different staff member under a name or token" in refused.stderr, \
            refused.stderr
        assert [name in {row[1] for row in rows} for rows in split.staff_copies().values()] == [True, False, True]
    finally:
        for service in ("intake", "referral"):
            with split.admin(service) as conn:
                conn.execute("DELETE FROM identity.staff WHERE name = %s", (name,))


def test_staff_commands_with_one_database_out_of_reach(split):
    name = f"partial-{uuid.uuid4().hex[:8]}"
    token = split.clinic("staff", "add", name, "--role", "scheduler").stdout.strip()
    cut_off = {**split.env, "CLINIC_TRIAGE_ADMIN_DATABASE_URL": NOWHERE.format(port=free_port())}

    refused = split.clinic("staff", "add", f"never-{uuid.uuid4().hex[:8]}", "--role", "admin", env=cut_off,
                           check=False)
    assert refused.returncode == 1 and "cannot reach the database of triage" in refused.stderr, refused.stderr
    assert "nothing was changed" in refused.stderr and not any(
        row[1].startswith("never-") for rows in split.staff_copies().values() for row in rows)

    partial = split.clinic("staff", "revoke", name, env=cut_off, check=False)
    assert partial.returncode == 1 and "not revoked in the database of triage" in partial.stderr, partial.stderr
    states = {service: {row[1]: row[4] for row in rows}[name] for service, rows in split.staff_copies().items()}
    assert states == {"intake": True, "triage": False, "referral": True}
    staff = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{split.base_url['referral']}/v1/referrals", headers=staff, timeout=10).status_code == 401

    split.clinic("staff", "revoke", name)  # run again once every database answers
    states = {service: {row[1]: row[4] for row in rows}[name] for service, rows in split.staff_copies().items()}
    assert states == {"intake": True, "triage": True, "referral": True}
    again = split.clinic("staff", "revoke", name, check=False)
    assert again.returncode == 1 and "no active staff member" in again.stderr
