"""The local PostgreSQL runner keeps each service in its own schema.

Runs a real server (initdb + postgres) on a temporary state dir and a free port.
"""

from __future__ import annotations

import itertools
import subprocess
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import errors

from infra.postgres import InfraError, LocalPostgres, running_postgres, stop_stale
from services.common.settings import SERVICES as SERVICE_ROLES

pytestmark = pytest.mark.integration

OTHER_SCHEMAS = [pair for pair in itertools.permutations(SERVICE_ROLES, 2)]


@pytest.fixture(scope="module")
def pg():
    with running_postgres(bootstrap=False) as server:
        # The first bootstrap of a fresh cluster, three at once: without the
        # advisory lock CREATE ROLE / CREATE DATABASE would race and fail.
        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(server.bootstrap) for _ in range(3)]:
                future.result()
        # A table in every service schema, made by its owner, for the others to poke at.
        for role in SERVICE_ROLES:
            with connect(server.role_url(role)) as conn:
                conn.execute(f"CREATE TABLE {role}.secret (id int)")
                conn.execute(f"INSERT INTO {role}.secret VALUES (1)")
        yield server


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


@pytest.mark.parametrize("role", SERVICE_ROLES)
def test_role_can_create_and_use_tables_in_its_own_schema(pg, role):
    with connect(pg.role_url(role)) as conn:
        conn.execute(f"CREATE TABLE {role}.own_probe (id int PRIMARY KEY)")
        conn.execute(f"INSERT INTO {role}.own_probe VALUES (1)")
        # Unqualified names land in the own schema: search_path starts with "$user".
        assert conn.execute("SELECT count(*) FROM own_probe").fetchone() == (1,)
        conn.execute(f"DROP TABLE {role}.own_probe")


@pytest.mark.parametrize(("role", "other"), OTHER_SCHEMAS)
def test_role_cannot_read_another_services_schema(pg, role, other):
    with connect(pg.role_url(role)) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match=f"permission denied for schema {other}"):
            conn.execute(f"SELECT * FROM {other}.secret")


@pytest.mark.parametrize(("role", "other"), OTHER_SCHEMAS)
def test_role_cannot_create_in_another_services_schema(pg, role, other):
    with connect(pg.role_url(role)) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match=f"permission denied for schema {other}"):
            conn.execute(f"CREATE TABLE {other}.intruder (id int)")


@pytest.mark.parametrize("role", SERVICE_ROLES)
def test_role_cannot_create_in_public_or_new_schemas(pg, role):
    with connect(pg.role_url(role)) as conn:
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema public"):
            conn.execute("CREATE TABLE public.intruder (id int)")
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for database"):
            conn.execute("CREATE SCHEMA intruder")


def test_service_roles_read_staff_identity_but_cannot_write_it(pg):
    with connect(pg.admin_url()) as admin:
        admin.execute("INSERT INTO identity.staff (name, role, token_hash) "
                      "VALUES ('dr who', 'scheduler', 'hash-1') ON CONFLICT DO NOTHING")
    for role in SERVICE_ROLES:
        with connect(pg.role_url(role)) as conn:
            rows = conn.execute("SELECT name, role, revoked_at FROM identity.staff").fetchall()
            assert ("dr who", "scheduler", None) in rows
            writes = [
                "INSERT INTO identity.staff (name, role, token_hash) VALUES ('x', 'admin', 'h')",
                "UPDATE identity.staff SET revoked_at = now()",
                "DELETE FROM identity.staff",
                "CREATE TABLE identity.intruder (id int)",
            ]
            for statement in writes:
                with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                    conn.execute(statement)


def test_staff_role_is_constrained(pg):
    with connect(pg.admin_url()) as admin:
        with pytest.raises(errors.CheckViolation):
            admin.execute("INSERT INTO identity.staff (name, role, token_hash) "
                          "VALUES ('eve', 'superuser', 'hash-eve')")


def test_bootstrap_is_idempotent_and_keeps_data(pg):
    pg.bootstrap()
    pg.bootstrap()
    for role in SERVICE_ROLES:
        with connect(pg.role_url(role)) as conn:
            assert conn.execute(f"SELECT id FROM {role}.secret").fetchall() == [(1,)]
    with connect(pg.role_url("intake")) as conn:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM triage.secret")
        assert conn.execute("SELECT count(*) FROM identity.staff").fetchone()[0] >= 0


def test_wrong_password_is_refused(pg):
    assert "intake:intake@" not in pg.role_url("intake"), "a local role's password is random, not its name"
    url = psycopg.conninfo.make_conninfo(pg.role_url("intake"), password="wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(url).close()


def test_second_server_on_the_same_state_dir_is_refused(pg):
    with pytest.raises(InfraError, match="already running"):
        stop_stale(pg.state_dir)
    with pytest.raises(InfraError, match="already running"):
        LocalPostgres(pg.state_dir, pg.port + 1).start()


def test_second_server_on_a_taken_port_is_refused(pg, tmp_path):
    other = LocalPostgres(tmp_path / "other", pg.port)
    (other.data_dir).mkdir(parents=True)
    (other.data_dir / "PG_VERSION").write_text("15\n")  # looks initialized; never started
    with pytest.raises(InfraError, match=f"port {pg.port} .* already in use"):
        other.start()


def test_stale_pid_file_of_a_dead_process_is_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file = tmp_path / "pg" / "data" / "postmaster.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{dead.pid}\n{pid_file.parent}\n")
    stop_stale(tmp_path)
    assert not pid_file.exists()
