"""Kiosk credentials (kiosk keys belong to intake alone) and each kiosk's submission quota.

A presented key is checked against the failed-authentication limits first (no database work
when this process knows the client or the key to be limited, services/common/auth.py), then
looked up once; a key that matches nothing in force is counted as a failure if the request
ends in 401. A kiosk may send CLINIC_KIOSK_REPORTS_PER_HOUR reports per clock hour (counted
in the same connection as the lookup, one statement); past that, 429 with Retry-After.
"""
from __future__ import annotations

from functools import wraps

import psycopg
from flask import current_app, g

from services.common.auth import bearer_token, failed, guard, identified, rate_limiter, too_many
from services.common.errors import ApiError
from services.common.rate_limit import Limit

from .. import store

QUOTA_WINDOW_S = 3600


def _pool():
    return current_app.extensions["clinic"].pool


def _lookup(conn: psycopg.Connection, token: str) -> store.Kiosk | None:
    found = store.identify_kiosk(conn, token)
    if found and found[1]:
        g.kiosk = found[0]
        identified("kiosk_key", found[0].kiosk_id)
    else:
        g.kiosk = None
        failed(token, "kiosk_key" if found else "bearer", found[0].kiosk_id if found else None)
    return g.kiosk


def current_kiosk() -> store.Kiosk | None:
    if "kiosk" not in g:
        token = bearer_token()
        g.kiosk = None
        if token:
            guard(token)
            with _pool().connection() as conn:
                _lookup(conn, token)
    return g.kiosk


def require_kiosk(view):
    """A kiosk key in force, within its kiosk's submission quota (for POST /v1/reports)."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_token()
        if token is None:
            raise ApiError(401, "unauthorized", "A valid kiosk key is required.")
        guard(token)
        quota = current_app.extensions["clinic"].settings.kiosk_reports_per_hour
        limiter = rate_limiter()
        with _pool().connection() as conn:
            kiosk = _lookup(conn, token)
            if kiosk is None:
                raise ApiError(401, "unauthorized", "A valid kiosk key is required.")
            bucket = f"kiosk-reports:{kiosk.kiosk_id}"
            retry_after = limiter.blocked([bucket])
            if retry_after is None:
                retry_after = limiter.hit(conn, {bucket: Limit(quota, QUOTA_WINDOW_S)})
        if retry_after is not None:
            raise too_many(retry_after, "kiosk_quota_exceeded",
                           f"This kiosk has sent its {quota} reports for this hour; try again in "
                           f"{retry_after} seconds.")
        return view(*args, **kwargs)

    return wrapper
