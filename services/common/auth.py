"""Bearer credentials, staff sessions, and the limits on failed authentication.

Keys and tokens are random (256 bits) and stored only as SHA-256 hashes: with that much
entropy a slow password hash adds nothing, and a fast one keeps per-request checks cheap.

Failed authentication (a presented key or token that matches nothing in force) is counted
per client address and per credential (rate_limit.py, counters in the service's schema);
past the limit the answer is 429 with Retry-After, in the one error shape. A request from a
bucket this process already knows to be limited is answered before any lookup. Every 401
and 403 is logged with the credential's kind and id (kiosk id, staff id) when known, never
the secret or its hash.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from functools import wraps

import psycopg
from flask import Flask, current_app, g, request
from psycopg_pool import PoolTimeout

from . import sessions
from .db import request_connection
from .errors import ApiError, error_response
from .identity import STAFF_ROLES, StaffMember, identify_staff
from .rate_limit import Limit, RateLimiter, address_bucket, secret_bucket

log = logging.getLogger(__name__)

# The queue page's script marks its own periodic refreshes with this header: they read the
# session without counting as the person's activity (the idle timeout goes on running).
BACKGROUND_HEADER = "X-Clinic-Background"


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# -- who is asking, for the log ------------------------------------------------------------
def identified(kind: str, credential_id: str | None) -> None:
    """Record which credential this request presented (for the 401/403 log line)."""
    g.credential = (kind, credential_id)


# -- limits on failed authentication ---------------------------------------------------------
def rate_limiter() -> RateLimiter:
    extensions = current_app.extensions
    limiter = extensions.get("clinic_rate_limiter")
    if limiter is None:  # not setdefault(key, RateLimiter(...)): that built one (and threw it away) per call
        limiter = extensions.setdefault("clinic_rate_limiter", RateLimiter(extensions["clinic"].settings.service))
    return limiter


def _failure_limits(secret: str) -> dict[str, Limit]:
    s = current_app.extensions["clinic"].settings
    return {address_bucket("auth-addr", request.remote_addr): Limit(s.auth_failures_per_address,
                                                                    s.auth_failure_window_seconds),
            secret_bucket("auth-cred", secret): Limit(s.auth_failures_per_credential,
                                                      s.auth_failure_window_seconds)}


def too_many(retry_after: int, code: str, message: str) -> ApiError:
    """A 429 in the one error shape; init_app's hook adds its Retry-After header."""
    g.retry_after = retry_after
    return ApiError(429, code, message)


def failures_limited(retry_after: int) -> ApiError:
    return too_many(retry_after, "too_many_failed_attempts",
                    f"Too many failed sign-in attempts; try again in {retry_after} seconds.")


def blocked_for(secret: str) -> int | None:
    """Retry-After seconds when this process knows the client's address or the secret itself
    to be limited (no database work), else None."""
    limiter = rate_limiter()
    if not limiter.blocks:  # the usual case: no bucket to name (an address parsed, a hash) at all
        return None
    return limiter.blocked(list(_failure_limits(secret)))


def guard(secret: str) -> None:
    """Before looking a presented secret up: 429 at once when it or its client is limited."""
    retry_after = blocked_for(secret)
    if retry_after is not None:
        raise failures_limited(retry_after)


def failed(secret: str, kind: str, credential_id: str | None = None) -> None:
    """A presented secret matched nothing in force; counted if the request ends in 401."""
    g.failed_secret = secret
    identified(kind, credential_id)


def count_failure(secret: str) -> int | None:
    """Count one failed authentication (one statement); Retry-After seconds once over a limit.
    On the request's connection: the request may hold it still (intake's POST)."""
    conn = request_connection(current_app.extensions["clinic"].pool)
    retry_after = rate_limiter().hit(conn, _failure_limits(secret))
    if retry_after is not None:
        log.warning("authentication limited", extra={"client": request.remote_addr, "retry_after": retry_after,
                                                     "credential_kind": _credential()[0],
                                                     "credential_id": _credential()[1]})
    return retry_after


def _credential() -> tuple[str | None, str | None]:
    return g.get("credential", (None, None))


# -- staff -------------------------------------------------------------------------------------
def session_store() -> sessions.SessionStore | None:
    return current_app.extensions.get("clinic_sessions")


def current_staff() -> StaffMember | None:
    """Staff from the bearer token, or from the queue page's session cookie (services whose
    app has a session store). Both are checked against identity.staff on every request, so a
    revocation takes effect at once."""
    if "staff" in g:
        return g.staff
    staff = None
    pool = current_app.extensions["clinic"].pool
    if token := bearer_token():
        guard(token)
        with pool.connection() as conn:
            found = identify_staff(conn, hash_secret(token))
        if found and found[1]:
            staff = found[0]
            g.pop("failed_secret", None)  # e.g. a staff token on a kiosk-or-staff endpoint
            identified("staff_token", staff.staff_id)
        else:
            failed(token, "staff_token" if found else "bearer", found[0].staff_id if found else None)
    elif (store := session_store()) is not None and (session_id := sessions.read_cookie(request)):
        with pool.connection() as conn:
            session = store.resume(conn, session_id, touch=request.headers.get(BACKGROUND_HEADER) != "1")
        g.staff_session = session
        staff = session.staff if session else None
        identified("session", staff.staff_id if staff else None)
    g.staff = staff
    return staff


def require_staff(*roles: str):
    allowed = roles or STAFF_ROLES

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            staff = current_staff()
            if staff is None:
                raise ApiError(401, "unauthorized", "A valid staff token is required.")
            if staff.role not in allowed:
                raise ApiError(403, "forbidden", f"This action needs the role: {' or '.join(allowed)}.")
            return view(*args, **kwargs)

        return wrapper

    return decorator


# -- the hook every API registers (services/common/web.py) -------------------------------------
def _after_request(response):
    status = response.status_code
    secret = g.pop("failed_secret", None)
    if status == 401 and secret is not None:
        try:
            retry_after = count_failure(secret)
        except (psycopg.Error, PoolTimeout) as exc:  # the 401 stands; the next failure counts
            log.warning("failed authentication not counted", extra={"error": type(exc).__name__})
            retry_after = None
        if retry_after is not None:
            response = error_response(429, "too_many_failed_attempts",
                                      f"Too many failed sign-in attempts; try again in {retry_after} seconds.")
            g.retry_after = retry_after
    if response.status_code == 429 and g.get("retry_after"):
        response.headers["Retry-After"] = str(g.retry_after)
    if status in (401, 403):
        kind, credential_id = _credential()
        log.warning("access refused", extra={
            "status": status, "method": request.method,
            "endpoint": request.url_rule.rule if request.url_rule else None,
            "client": request.remote_addr, "credential_kind": kind, "credential_id": credential_id})
    return response


def init_app(app: Flask) -> None:
    app.after_request(_after_request)
