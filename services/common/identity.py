"""The identity store: every read and write of the `identity` schema (staff members and
their token hashes).

Every service reads it, so that a revocation takes effect at once everywhere; only the
administration commands write it, as the admin role (the service roles may only SELECT,
see services/admin/sql/identity.sql). When the services have databases of their own, each
database holds a copy, written by the commands to all of them with the same staff ids
(services/admin/identity_copies.py, docs/database-per-service.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import psycopg

STAFF_ROLES = ("scheduler", "admin")

# The staff members whose token is in force, as a relation other queries may join (the
# queue page's sessions join it at every request, services/common/sessions.py, so that a
# revocation ends a session at once). The one place outside this module that reads the
# identity schema does so through this.
ACTIVE_STAFF = "(SELECT staff_id, name, role FROM identity.staff WHERE revoked_at IS NULL)"


class StaffNameTaken(Exception):
    """A staff member of that name exists already (names are unique)."""


@dataclass(frozen=True)
class StaffMember:
    staff_id: str
    name: str
    role: str


def find_staff(conn: psycopg.Connection, token_hash: str) -> StaffMember | None:
    """The active staff member whose token hashes to token_hash."""
    row = conn.execute(
        "SELECT staff_id::text, name, role FROM identity.staff WHERE token_hash = %s AND revoked_at IS NULL",
        (token_hash,),
    ).fetchone()
    return StaffMember(*row) if row else None


def identify_staff(conn: psycopg.Connection, token_hash: str) -> tuple[StaffMember, bool] | None:
    """The staff member whose token hashes to token_hash, and whether that token is still in
    force (a revoked one is named in the log line of the refusal); one index probe."""
    row = conn.execute(
        "SELECT staff_id::text, name, role, revoked_at IS NULL FROM identity.staff WHERE token_hash = %s",
        (token_hash,),
    ).fetchone()
    return (StaffMember(*row[:3]), row[3]) if row else None


def add_staff(conn: psycopg.Connection, name: str, role: str, token_hash: str, staff_id: str) -> None:
    """A new member; `staff_id` chosen by the caller, so that every copy has the same one."""
    try:
        conn.execute("INSERT INTO identity.staff (staff_id, name, role, token_hash) VALUES (%s, %s, %s, %s)",
                     (staff_id, name, role, token_hash))
    except psycopg.errors.UniqueViolation:
        raise StaffNameTaken(name) from None


def name_taken(conn: psycopg.Connection, name: str) -> bool:
    """Whether a member of that name exists, revoked or not (names are never reused)."""
    return conn.execute("SELECT 1 FROM identity.staff WHERE name = %s", (name,)).fetchone() is not None


STAFF_COLUMNS = ("staff_id", "name", "role", "token_hash", "created_at", "revoked_at")


def all_staff(conn: psycopg.Connection) -> list[tuple]:
    """Every member's row (STAFF_COLUMNS), to compare copies of the identity schema."""
    return conn.execute(f"SELECT {', '.join(STAFF_COLUMNS)} FROM identity.staff ORDER BY staff_id").fetchall()


def copy_staff(conn: psycopg.Connection, rows: list[tuple]) -> None:
    """Make this copy hold `rows` (STAFF_COLUMNS): missing members added, and a revocation
    kept wherever one copy has it (the earliest time wins; a revoked token never comes back)."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO identity.staff AS s (staff_id, name, role, token_hash, created_at, revoked_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (staff_id) DO UPDATE SET revoked_at = LEAST(s.revoked_at, EXCLUDED.revoked_at)"
            "  WHERE EXCLUDED.revoked_at IS NOT NULL AND s.revoked_at IS DISTINCT FROM"
            "        LEAST(s.revoked_at, EXCLUDED.revoked_at)",
            rows)


def revoke_staff(conn: psycopg.Connection, name: str) -> bool:
    """End the named member's token at once; False when there is no active one."""
    cur = conn.execute("UPDATE identity.staff SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
                       (name,))
    return cur.rowcount == 1
