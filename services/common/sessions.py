"""Server-side sessions for staff pages (the referral service's /queue), in the service's own
schema, as outbox.py works on `<schema>.outbox`:

    staff_sessions(session_hash PK, staff_id, csrf_token, created_at, last_seen_at)

The browser holds only an opaque random id (256 bits); the table holds its SHA-256, so a
copy of the table signs nobody in. A session is in force while
- its row exists (sign-out deletes it),
- its staff member's token is in force (every lookup joins identity's active staff, so a
  revocation ends every session of that member at once),
- it was used within the idle timeout, and was started within the absolute lifetime.
A lookup is one statement: one primary-key probe joined with one on identity.staff.

The cookie: `__Host-clinic_session` with Secure, Path=/ and no Domain whenever the request
came over HTTPS (behind the TLS proxy: `request.is_secure` from X-Forwarded-Proto through
ProxyFix) or to a loopback host, where Chromium treats plain http as a secure context and
keeps Secure and `__Host-` cookies (checked with Debian's Chromium 156 on http://127.0.0.1
and http://localhost: `__Host-` with Secure is kept, without Secure it is dropped). Anywhere
else on plain http (a LAN without the proxy, never the deployment) a browser would drop a
Secure cookie, so it is the plain `clinic_session`, without Secure. Always HttpOnly and
SameSite=Strict.
"""
from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from flask import Request, Response

from .identity import ACTIVE_STAFF, StaffMember

COOKIE = "clinic_session"
HOST_PREFIX = "__Host-"


@dataclass(frozen=True)
class StaffSession:
    staff: StaffMember
    csrf_token: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _loopback(host: str) -> bool:
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host  # drop a port (not IPv6's colons)
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_context(request: Request) -> bool:
    """Whether a browser keeps a Secure cookie from this request (see the module's notes)."""
    return request.is_secure or _loopback(request.host)


def cookie_name(request: Request, base: str = COOKIE) -> str:
    return HOST_PREFIX + base if secure_context(request) else base


def read_cookie(request: Request, base: str = COOKIE) -> str | None:
    return request.cookies.get(cookie_name(request, base)) or None


def set_cookie(response: Response, request: Request, value: str, max_age: int | None, base: str = COOKIE) -> None:
    # __Host- demands Secure, Path=/ and no Domain; the same attributes serve the plain name.
    response.set_cookie(cookie_name(request, base), value, max_age=max_age, path="/", domain=None,
                        secure=secure_context(request), httponly=True, samesite="Strict")


def clear_cookie(response: Response, request: Request, base: str = COOKIE) -> None:
    response.delete_cookie(cookie_name(request, base), path="/", domain=None, secure=secure_context(request),
                           httponly=True, samesite="Strict")


class SessionStore:
    def __init__(self, schema: str, *, idle: timedelta, max_age: timedelta):
        self.schema = schema
        self.idle = idle
        self.max_age = max_age

    @property
    def cookie_max_age(self) -> int:
        """The browser forgets the cookie when the session would end anyway."""
        return max(1, int(self.max_age.total_seconds()))

    def start(self, conn: psycopg.Connection, staff: StaffMember) -> tuple[str, StaffSession]:
        """A new session for staff; (the id for the cookie, the session). Ended sessions are
        deleted on the way (sign-ins are rare, the table small)."""
        self.purge(conn)
        session_id = secrets.token_urlsafe(32)  # 256 bits
        csrf = secrets.token_urlsafe(32)
        conn.execute(f"INSERT INTO {self.schema}.staff_sessions (session_hash, staff_id, csrf_token)"
                     " VALUES (%s, %s, %s)", (_hash(session_id), staff.staff_id, csrf))
        return session_id, StaffSession(staff, csrf)

    def resume(self, conn: psycopg.Connection, session_id: str, *, touch: bool = True) -> StaffSession | None:
        """The session in force with this id, or None. `touch`: the signed-in person did
        something (not the page's own background polling): the idle timeout starts again."""
        where = (" WHERE s.session_hash = %(hash)s AND st.staff_id = s.staff_id"
                 " AND s.last_seen_at > now() - %(idle)s AND s.created_at > now() - %(max_age)s")
        args = {"hash": _hash(session_id), "idle": self.idle, "max_age": self.max_age}
        if touch:
            sql = (f"UPDATE {self.schema}.staff_sessions s SET last_seen_at = now() FROM {ACTIVE_STAFF} st"
                   f"{where} RETURNING st.staff_id::text, st.name, st.role, s.csrf_token")
        else:
            sql = (f"SELECT st.staff_id::text, st.name, st.role, s.csrf_token"
                   f" FROM {self.schema}.staff_sessions s JOIN {ACTIVE_STAFF} st USING (staff_id){where}")
        row = conn.execute(sql, args).fetchone()
        return StaffSession(StaffMember(*row[:3]), row[3]) if row else None

    def end(self, conn: psycopg.Connection, session_id: str) -> bool:
        return conn.execute(f"DELETE FROM {self.schema}.staff_sessions WHERE session_hash = %s",
                            (_hash(session_id),)).rowcount == 1

    def purge(self, conn: psycopg.Connection) -> int:
        """Delete sessions that can no longer be resumed: timed out, or of a revoked member."""
        return conn.execute(
            f"DELETE FROM {self.schema}.staff_sessions s"
            f" WHERE s.last_seen_at <= now() - %s OR s.created_at <= now() - %s"
            f" OR NOT EXISTS (SELECT 1 FROM {ACTIVE_STAFF} st WHERE st.staff_id = s.staff_id)",
            (self.idle, self.max_age)).rowcount
