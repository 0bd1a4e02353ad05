"""Staff identity kept alike in every database the services use.

Every API checks a staff token (and the queue page its session, in one statement joined
with identity.staff) against its own database, so that a check never waits on another
server and a revocation is seen at the next request. With one database (the local stack)
there is one copy; with a database per service, each holds a copy, and these functions
write all of them, as the admin of each (docs/database-per-service.md):

- add: every database reachable first, the name free in all, then one row with the same
  staff id in each; the token is printed only when every copy holds it;
- revoke: every copy that can be reached, and an error naming those that could not, so
  that the operator runs it again (a revocation is never reported done while a copy still
  accepts the token);
- converge (`clinic db bootstrap`): a copy that missed a write, or a database new to the
  set, gets every member, and a revocation held by one copy is made in all.
"""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg

from services.common import identity
from services.common.db import connect
from services.common.settings import Database, Settings

from .errors import CommandError


def _label(database: Database) -> str:
    return f"the database of {' and '.join(database.services)}"


@contextlib.contextmanager
def _all_copies(settings: Settings) -> Iterator[list[tuple[Database, psycopg.Connection]]]:
    """A connection as the admin to every database, or a CommandError naming the first that
    cannot be reached (nothing written anywhere yet)."""
    with contextlib.ExitStack() as stack:
        copies = []
        for database in settings.databases():
            try:
                conn = stack.enter_context(connect(database.admin_url))
            except psycopg.OperationalError as exc:
                raise CommandError(f"cannot reach {_label(database)} ({_first_line(exc)}); nothing was changed"
                                   ) from None
            copies.append((database, conn))
        yield copies


def add_staff(settings: Settings, name: str, role: str, token_hash: str) -> None:
    staff_id = str(uuid.uuid4())
    with _all_copies(settings) as copies:
        if any(identity.name_taken(conn, name) for _, conn in copies):
            raise identity.StaffNameTaken(name)
        for _, conn in copies:
            identity.add_staff(conn, name, role, token_hash, staff_id)
        committed = []
        try:
            for database, conn in copies:
                conn.commit()
                committed.append(database)
        except psycopg.Error as exc:
            # A commit lost after others went through: the member is revoked where written,
            # so that no copy accepts a token that was never handed out.
            for database, conn in copies:
                if database in committed:
                    identity.revoke_staff(conn, name)
                    conn.commit()
            raise CommandError(f"staff member {name!r} not created: {_label(copies[len(committed)][0])} failed"
                               f" ({_first_line(exc)}); revoked where written, add them again under another"
                               " name") from None


def revoke_staff(settings: Settings, name: str) -> bool:
    """End the named member's token in every copy; False when no copy has it in force."""
    revoked, unreachable = False, []
    for database in settings.databases():
        try:
            with connect(database.admin_url) as conn:
                revoked = identity.revoke_staff(conn, name) or revoked
        except psycopg.OperationalError as exc:
            unreachable.append(f"{_label(database)} ({_first_line(exc)})")
    if unreachable:
        raise CommandError(f"staff member {name!r} not revoked in {'; '.join(unreachable)}: the token still works"
                           " there; run the command again once it can be reached")
    return revoked


def converge(settings: Settings) -> int:
    """Make every copy hold every member, revocations included; how many rows were missing
    or behind in some copy."""
    with _all_copies(settings) as copies:
        if len(copies) < 2:
            return 0
        held = {database: identity.all_staff(conn) for database, conn in copies}
        merged = _merge([row for rows in held.values() for row in rows])
        behind = 0
        for database, conn in copies:
            mine = set(held[database])
            missing = [row for row in merged if row not in mine]
            try:
                identity.copy_staff(conn, missing)
            except psycopg.errors.UniqueViolation:
                raise CommandError(f"{_label(database)} has a different staff member under a name or token of"
                                   " another copy: these databases were not made by one `clinic`; compare their"
                                   " identity.staff by hand") from None
            behind += len(missing)
        for _, conn in copies:
            conn.commit()
        return behind


def _merge(rows: list[tuple]) -> list[tuple]:
    """One row per staff id; the earliest revocation of any copy."""
    by_id: dict = {}
    for row in rows:
        kept = by_id.setdefault(row[0], row)
        revoked = [t for t in (kept[5], row[5]) if t is not None]
        by_id[row[0]] = (*kept[:5], min(revoked) if revoked else None)
    return sorted(by_id.values(), key=lambda row: str(row[0]))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
