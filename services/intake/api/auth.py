"""Kiosk credentials (kiosk keys belong to intake alone) and each kiosk's submission quota.

A presented key is checked against the failed-authentication limits first (no database work
when this process knows the client or the key to be limited, services/common/auth.py), then
looked up once; a key that matches nothing in force is counted as a failure if the request
ends in 401. A kiosk may send CLINIC_KIOSK_REPORTS_PER_HOUR reports per clock hour, counted
in the statement that looks the key up; past that, 429 with Retry-After. POST's lookup, quota
and report share the request's one connection (services/common/db.request_connection).
"""
from __future__ import annotations

from functools import wraps

import psycopg
from flask import current_app, g

from services.common.auth import bearer_token, failed, guard, hash_secret, identified, rate_limiter, too_many
from services.common.db import request_connection
from services.common.errors import ApiError
from services.common.rate_limit import Limit, RateLimiter

from .. import store

QUOTA_WINDOW_S = 3600
QUOTA_BUCKET = "kiosk-reports:"  # + the kiosk's id


def _pool():
    return current_app.extensions["clinic"].pool


def _lookup(conn: psycopg.Connection, token: str) -> store.Kiosk | None:
    return _identified(token, store.identify_kiosk(conn, token))


def _identified(token: str, found: tuple[store.Kiosk, bool] | None) -> store.Kiosk | None:
    """Note on g which kiosk the key names if it is in force (else the failure, for the 401)."""
    if found and found[1]:
        g.kiosk = found[0]
        identified("kiosk_key", found[0].kiosk_id)
    else:
        g.kiosk = None
        failed(token, "kiosk_key" if found else "bearer", found[0].kiosk_id if found else None)
    return g.kiosk


# The kiosk's quota hit commits without waiting for its WAL flush (set_config(..., true): for this
# statement's own transaction only; the cross join makes PostgreSQL evaluate it). Nothing is
# lost for an accepted report: its own commit, which does wait, flushes the WAL up to and past
# this hit. A crash can only forget the hits of requests refused after the lookup (a few
# hundred milliseconds of them), which a quota can afford, and each POST waits for one flush, not two.
_IDENTIFY_COUNTING_SQL: dict[str, str] = {}


def _identify_counting_sql(limiter: RateLimiter) -> str:
    sql = _IDENTIFY_COUNTING_SQL.get(limiter.schema)
    if sql is None:
        sql = _IDENTIFY_COUNTING_SQL[limiter.schema] = (
            "WITH kiosk AS (SELECT kiosk_id, name, revoked_at IS NULL AS in_force FROM intake.kiosks"
            "               WHERE key_hash = %(key_hash)s),"
            " hit AS (" + limiter.count_sql(
                "(SELECT %(prefix)s || kiosk_id::text, %(window_s)s::int FROM kiosk WHERE in_force) AS t (b, w)") + "),"
            " quick AS (SELECT set_config('synchronous_commit', 'off', true))"
            " SELECT kiosk.kiosk_id::text, kiosk.name, kiosk.in_force, hit.bucket, hit.hits, hit.expires_at"
            " FROM kiosk LEFT JOIN hit ON true CROSS JOIN quick")
    return sql


def _identify_counting(conn: psycopg.Connection, token: str, limiter: RateLimiter):
    """store.identify_kiosk, and for a key in force one hit on its kiosk's quota bucket, in one
    statement (one round trip): ((kiosk, in force) or None, the counted rows for limiter.judge)."""
    row = conn.execute(
        _identify_counting_sql(limiter),
        {"key_hash": hash_secret(token), "prefix": QUOTA_BUCKET, "window_s": QUOTA_WINDOW_S},
    ).fetchone()
    if row is None:
        return None, []
    kiosk_id, name, in_force, bucket, hits, expires_at = row
    return (store.Kiosk(kiosk_id, name), in_force), [(bucket, hits, expires_at)] if bucket is not None else []


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
        conn = request_connection(_pool())
        found, counted = _identify_counting(conn, token, limiter)
        kiosk = _identified(token, found)
        if kiosk is None:
            raise ApiError(401, "unauthorized", "A valid kiosk key is required.")
        bucket = QUOTA_BUCKET + kiosk.kiosk_id
        # Known blocked in this process: still 429, though the statement counted one more hit.
        retry_after = limiter.blocked([bucket]) or limiter.judge(conn, {bucket: Limit(quota, QUOTA_WINDOW_S)},
                                                                 counted)
        if retry_after is not None:
            raise too_many(retry_after, "kiosk_quota_exceeded",
                           f"This kiosk has sent its {quota} reports for this hour; try again in "
                           f"{retry_after} seconds.")
        return view(*args, **kwargs)

    return wrapper
