"""The databases' shape, as the admin: roles, schemas and grants (`clinic db bootstrap`,
compose's one-shot, and the local runner of `make run` and the tests), then each
service's migrations as its own role.

The grants are what keeps patient data apart: each service role owns its schema and
cannot read another's (sql/bootstrap.sql, sql/service_schema.sql), all may only read staff
identity (sql/identity.sql), and all may only append to the access audit (sql/audit.sql).

One database holds all three schemas on the local stack; each service may have its own
(its CLINIC_<SVC>_DATABASE_URL naming another server or database): each database is then
made with its own services' roles and schemas, and a copy of identity and audit
(docs/database-per-service.md).
"""
from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg import sql

from services.common.db import apply_migrations, connect
from services.common.settings import (ADMIN_ROLE, DATABASE_PLACE, SERVICES, Settings, database_place,
                                      db_password_setting)

from . import identity_copies
from .errors import CommandError

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).parent / "sql"
# Serialises concurrent bootstraps (roles and CREATE DATABASE race otherwise).
# Arbitrary constant: b"clinicbs" as a big-endian int64.
BOOTSTRAP_LOCK_KEY = 0x636C696E69636273


def bootstrap(settings: Settings) -> None:
    """Roles, schemas and grants of every database as its admin, then each service's
    migrations as its own role, then staff identity made alike in every database."""
    passwords = role_passwords(settings)
    for database in settings.databases():
        maintenance = psycopg.conninfo.make_conninfo(database.admin_url, dbname="postgres")
        dbname = database_place(settings.role_url(database.services[0]))[DATABASE_PLACE.index("dbname")]
        bootstrap_database(maintenance, dbname, {role: passwords[role] for role in database.services})
    for service in SERVICES:
        with connect(settings.role_url(service)) as conn:
            apply_migrations(conn, service, f"services.{service}")
    if copied := identity_copies.converge(settings):
        log.warning("staff identity: %d rows were missing or behind in some database, now alike", copied)


def role_passwords(settings: Settings) -> dict[str, str]:
    """Each role's password as its URL gives it; a role without one is refused (no default)."""
    passwords = {role: psycopg.conninfo.conninfo_to_dict(settings.role_url(role)).get("password")
                 for role in SERVICES}
    if missing := [role for role, password in passwords.items() if not password]:
        raise CommandError("no database password for " + ", ".join(missing) + ": set "
                           + ", ".join(db_password_setting(role) for role in missing)
                           + " (or the role's CLINIC_<ROLE>_DATABASE_URL with its password)")
    return passwords


def service_connection(settings: Settings, service: str) -> psycopg.Connection:
    """A connection as the service's own role, with its migrations applied, so that
    credentials and demo data can be made before the service has ever started."""
    conn = connect(settings.role_url(service))
    apply_migrations(conn, service, f"services.{service}")
    return conn


def bootstrap_database(maintenance_url: str, dbname: str, role_passwords: dict[str, str]) -> None:
    """Roles, database, schemas and grants, from a superuser connection to any database of
    the server, for the services named in role_passwords (the ones this database holds);
    idempotent and safe to run concurrently."""
    services = tuple(role_passwords)
    # autocommit: CREATE DATABASE cannot run inside a transaction block.
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        # Session-level lock, held until this connection closes, i.e. across
        # the per-database part below too.
        conn.execute("SELECT pg_advisory_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
        _ensure_roles(conn, role_passwords)
        _ensure_database(conn, dbname)
        db_url = psycopg.conninfo.make_conninfo(maintenance_url, dbname=dbname)
        with psycopg.connect(db_url) as db, db.transaction():
            for statements in database_sql(services):
                db.execute(statements)
    log.info("bootstrapped database %s", dbname, extra={"services": list(services)})


def database_sql(services: tuple[str, ...]) -> list[sql.Composed]:
    """The bootstrap's SQL files, filled in for a database holding these services' schemas."""
    roles = sql.SQL(", ").join(sql.Identifier(service) for service in services)

    def read(name: str, **fields) -> sql.Composed:
        return sql.SQL((SQL_DIR / name).read_text()).format(service_roles=roles, **fields)

    schemas = [read("service_schema.sql", schema=sql.Identifier(service),
                    others=sql.SQL(", ").join([sql.SQL("PUBLIC"), *(sql.Identifier(other) for other in services
                                                                   if other != service)]))
               for service in services]
    return [read("bootstrap.sql"), *schemas, read("identity.sql"), read("audit.sql")]


def _ensure_roles(conn: psycopg.Connection, role_passwords: dict[str, str]) -> None:
    for role in role_passwords:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        # Converge attributes too, in case the role was made by hand. Utility
        # statements take no bind parameters, hence the composed literal.
        conn.execute(sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                             "PASSWORD {}").format(sql.SQL(verb), sql.Identifier(role),
                                                   sql.Literal(role_passwords[role])))


def _ensure_database(conn: psycopg.Connection, dbname: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(dbname), sql.Identifier(ADMIN_ROLE)))
