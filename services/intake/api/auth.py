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


# The key's lookup and the quota's hit, as common table expressions: `kiosk` (the key's kiosk,
# in force or not) and `hit` (one hit on its quota bucket, only when in force: count_sql's row).
_KIOSK_CTES: dict[str, str] = {}


def _kiosk_ctes(limiter: RateLimiter) -> str:
    ctes = _KIOSK_CTES.get(limiter.schema)
    if ctes is None:
        ctes = _KIOSK_CTES[limiter.schema] = (
            "WITH kiosk AS (SELECT kiosk_id, name, revoked_at IS NULL AS in_force FROM intake.kiosks"
            "               WHERE key_hash = %(key_hash)s),"
            " hit AS (" + limiter.count_sql(
                "(SELECT %(prefix)s || kiosk_id::text, %(window_s)s::int FROM kiosk WHERE in_force) AS t (b, w)") + ")")
    return ctes


_KIOSK_COLUMNS = "kiosk.kiosk_id::text, kiosk.name, kiosk.in_force, hit.bucket, hit.hits, hit.expires_at"

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
            _kiosk_ctes(limiter) + ", quick AS (SELECT set_config('synchronous_commit', 'off', true))"
            f" SELECT {_KIOSK_COLUMNS} FROM kiosk LEFT JOIN hit ON true CROSS JOIN quick")
    return sql


def _params(token: str) -> dict:
    return {"key_hash": hash_secret(token), "prefix": QUOTA_BUCKET, "window_s": QUOTA_WINDOW_S}


def _found_and_counted(row):
    """((kiosk, in force) or None, the counted rows for limiter.judge) from _KIOSK_COLUMNS."""
    if row is None:
        return None, []
    kiosk_id, name, in_force, bucket, hits, expires_at = row[:6]
    return (store.Kiosk(kiosk_id, name), in_force), [(bucket, hits, expires_at)] if bucket is not None else []


def _identify_counting(conn: psycopg.Connection, token: str, limiter: RateLimiter):
    """store.identify_kiosk, and for a key in force one hit on its kiosk's quota bucket, in one
    statement (one round trip): ((kiosk, in force) or None, the counted rows for limiter.judge)."""
    return _found_and_counted(conn.execute(_identify_counting_sql(limiter), _params(token)).fetchone())


def _admit(conn: psycopg.Connection, token: str, limiter: RateLimiter, found, counted) -> store.Kiosk:
    """The kiosk of a key in force within its quota, else the 401 or the 429 (in that order)."""
    kiosk = _identified(token, found)
    if kiosk is None:
        raise ApiError(401, "unauthorized", "A valid kiosk key is required.")
    quota = _quota()
    bucket = QUOTA_BUCKET + kiosk.kiosk_id
    # Known blocked in this process: still 429, though the statement counted one more hit.
    retry_after = limiter.blocked([bucket]) or limiter.judge(conn, {bucket: Limit(quota, QUOTA_WINDOW_S)}, counted)
    if retry_after is not None:
        raise too_many(retry_after, "kiosk_quota_exceeded",
                       f"This kiosk has sent its {quota} reports for this hour; try again in "
                       f"{retry_after} seconds.")
    return kiosk


def _quota() -> int:
    return current_app.extensions["clinic"].settings.kiosk_reports_per_hour


# A deferred check's statement: the kiosk CTEs, `admitted` (the kiosk's id when its key is in
# force and this hit is within its quota: no row otherwise), the view's own CTEs on it, then
# the kiosk's columns and the view's (one row when the key matches a kiosk, none otherwise).
_ADMITTED_SQL: dict[tuple[str, str, str], str] = {}


def _admitted_sql(limiter: RateLimiter, ctes: str, columns: str) -> str:
    sql = _ADMITTED_SQL.get((limiter.schema, ctes, columns))
    if sql is None:
        sql = _ADMITTED_SQL[(limiter.schema, ctes, columns)] = (
            _kiosk_ctes(limiter) + ", admitted AS (SELECT kiosk.kiosk_id FROM kiosk JOIN hit ON true"
            "                       WHERE kiosk.in_force AND hit.hits <= %(quota)s)"
            f", {ctes} SELECT {_KIOSK_COLUMNS}, EXISTS (SELECT FROM admitted), {columns}"
            " FROM kiosk LEFT JOIN hit ON true")
    return sql


def deferred() -> bool:
    """Whether require_kiosk left the key's check to the view's statement (admitted_statement)."""
    return "kiosk_deferred" in g


def admitted_statement(conn: psycopg.Connection, ctes: str, columns: str, params: dict) -> tuple[store.Kiosk, tuple]:
    """For a view whose check require_kiosk deferred: the key's lookup, the quota's hit and the
    view's own work in one statement (one round trip, one commit), then the 401 or the 429
    exactly as require_kiosk would have answered them. `ctes` must write only for a row of
    `admitted`, so that nothing is written when the answer is 401 or 429. The kiosk and the
    view's columns. The quota's hit commits with the view's work, waiting for its WAL flush as
    that work does. The database's count decides: this process's memory of a block
    (limiter.blocked) ends with the window the database counts in, and that count only grows."""
    token = g.pop("kiosk_deferred")
    limiter = rate_limiter()
    row = conn.execute(_admitted_sql(limiter, ctes, columns),
                       {**params, **_params(token), "quota": _quota()}).fetchone()
    found, counted = _found_and_counted(row)
    if row is not None and row[6]:  # a key in force, within the quota by the database's count
        limiter.judge(conn, {}, [])  # its purge now and then, as require_kiosk's check does
        return _identified(token, found), row[7:]
    _admit(conn, token, limiter, found, counted)  # raises the 401 or the 429
    raise RuntimeError("a kiosk key in force within its quota was not admitted")


def current_kiosk() -> store.Kiosk | None:
    if "kiosk" not in g:
        token = bearer_token()
        g.kiosk = None
        if token:
            guard(token)
            with _pool().connection() as conn:
                _lookup(conn, token)
    return g.kiosk


def require_kiosk(view=None, *, defer_when=None):
    """A kiosk key in force, within its kiosk's submission quota (for POST /v1/reports).

    defer_when: a function of the request; when it answers true, the key is not looked up here
    but by the view's own statement (admitted_statement), which must then be the view's first
    database work and come before any answer of its own: the 401 and 429 come from it."""
    if view is None:
        return lambda v: require_kiosk(v, defer_when=defer_when)

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = bearer_token()
        if token is None:
            raise ApiError(401, "unauthorized", "A valid kiosk key is required.")
        guard(token)
        if defer_when is not None and defer_when():
            g.kiosk_deferred = token
            return view(*args, **kwargs)
        limiter = rate_limiter()
        conn = request_connection(_pool())
        found, counted = _identify_counting(conn, token, limiter)
        _admit(conn, token, limiter, found, counted)
        return view(*args, **kwargs)

    return wrapper
