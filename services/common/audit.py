"""The access audit: every staff read or change of patient data (a referral, a report, a
decision), through the API or the queue page, appends one row to `audit.access`, a table
in the admin's `audit` schema that the service roles may only INSERT into
(services/admin/sql/audit.sql): no service can read, rewrite or delete the record of who
looked at what. `clinic audit` (services/admin/audit.py) reads it as the admin.

A row says who (staff id, name, role), what (the action and the record type), which
records (ids; the patients' MRNs where the service knows them), when (the database's
clock, not the service's), and from where (the client's address, the API with a bearer
token or the queue page with its session, the request's W3C traceparent).

Call `record` inside the view's database transaction, before it answers:
- a change: in the change's own transaction, so the row and the change commit together
  or not at all;
- a read: in the read's connection, committed before the answer is built; a read whose
  row cannot be written is refused (503 `audit_unavailable`), so nothing is shown unaudited.
A list request is one row naming every record it returned (not one row per record): one
insert per request whatever the page size, and `--patient` still finds it (GIN index on
the MRN keys). Only found records are audited: a 404 showed nothing.

The queue page refreshes its list every 5 seconds by itself (marked X-Clinic-Background,
which the session's idle timeout ignores too). Such a refresh is audited (`background`
true) unless it returned exactly the records and MRNs that this process already audited
for the same page session within REPEAT_WINDOW: an open screen showing an unchanged queue
would otherwise add 720 rows an hour (about 5 MB with a 50-row page) that say nothing new.
Whatever the person does (the first load, a filter, "more", an action) is always audited,
and so is every refresh whose records or patients differ. Each gunicorn worker keeps its
own memory, so a refresh may be audited once per worker per window.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
import unicodedata
from collections.abc import Iterable

import psycopg
from flask import after_this_request, g, request

from . import envelope
from .auth import BACKGROUND_HEADER, current_staff
from .errors import ApiError

log = logging.getLogger(__name__)

READ, LIST = "read", "list"
RECORD_TYPES = ("referral", "report", "decision")
REPEAT_WINDOW_SECONDS = 15 * 60

# (page session, what a background refresh returned) -> when it was last audited (monotonic).
_recent_refreshes: dict[tuple[str, str], float] = {}
_recent_lock = threading.Lock()

_INSERT = (
    "INSERT INTO audit.access (staff_id, staff_name, staff_role, channel, background, action, record_type,"
    " record_ids, patient_mrns, patient_keys, endpoint, traceparent, client_addr)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s::uuid[], %s, %s, %s, %s, %s)"
)


def mrn_key(mrn: str) -> str:
    """The MRN as compared, as the referral service compares it (services/referral/domain:
    NFKC, trimmed, case-folded, NFKC again); a unit test keeps the two the same."""
    folded = unicodedata.normalize("NFKC", mrn).strip().casefold()
    return unicodedata.normalize("NFKC", folded)


def record(conn: psycopg.Connection, action: str, record_type: str, record_ids: Iterable[str],
           mrns: Iterable[str | None] = (), *, traceparent: str | None = None) -> None:
    """Append the audit row of this request's access, in conn's current transaction.

    For the staff member of this request (services.common.auth.current_staff, already
    checked by require_staff). Raises ApiError 503 when the row cannot be written (the
    transaction is then aborted: the caller's change or read does not go through)."""
    staff = current_staff()
    if staff is None:  # a programming error: only staff views audit
        raise RuntimeError("audit.record outside a staff request")
    known = sorted({m for m in mrns if m})
    record_ids = list(record_ids)
    session = g.get("staff_session")
    background = session is not None and request.headers.get(BACKGROUND_HEADER) == "1"
    if background and _seen_lately(session.csrf_token, action, record_type, record_ids, known):
        return
    params = (staff.staff_id, staff.name, staff.role, "page" if session is not None else "api", background,
              action, record_type, record_ids, known, sorted({mrn_key(m) for m in known}),
              f"{request.method} {request.url_rule.rule if request.url_rule else request.path}",
              traceparent or envelope.child_traceparent(request.headers.get("traceparent")),
              _client_address())
    try:
        conn.execute(_INSERT, params)
    except psycopg.OperationalError:
        raise  # the database is gone: the usual 503 database_unavailable
    except psycopg.Error as exc:
        # The error's text could quote row values; its class says enough.
        log.error("access audit not written; request refused", extra={"error": type(exc).__name__})
        raise ApiError(503, "audit_unavailable",
                       "The access audit cannot be written; nothing is shown or changed without it. "
                       "Retry shortly.") from None


def _client_address() -> str | None:
    """The client's address for the inet column; None when it is not an IP address (a unix
    socket, or a proxy's header gone wrong), so that the row is still written."""
    try:
        return str(ipaddress.ip_address(request.remote_addr or ""))
    except ValueError:
        return None


def _seen_lately(session_token: str, action: str, record_type: str, record_ids: list[str],
                 mrns: list[str]) -> bool:
    """Whether this page session's background refresh returned what was audited for it within
    the window; if not, it is remembered once its answer is a success (a refresh whose row
    was rolled back is audited again next time)."""
    digest = hashlib.sha256("\x1f".join([action, record_type, *record_ids, "", *mrns]).encode()).hexdigest()
    key = (hashlib.sha256(session_token.encode()).hexdigest(), digest)
    now = time.monotonic()
    with _recent_lock:
        seen = _recent_refreshes.get(key)
        if seen is not None and now - seen < REPEAT_WINDOW_SECONDS:
            return True
        if len(_recent_refreshes) > 10_000:
            for stale in [k for k, at in _recent_refreshes.items() if now - at >= REPEAT_WINDOW_SECONDS]:
                del _recent_refreshes[stale]

    @after_this_request
    def remember(response):
        if response.status_code == 200:
            with _recent_lock:
                _recent_refreshes[key] = now
        return response

    return False
