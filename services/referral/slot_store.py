"""Referral's SQL for providers and their slots.

A slot is free when no referral holds it (referrals.slot_id); completed referrals keep
theirs as a record. The database keeps that on the slot as `booked` too (migrations/006:
triggers), so "free" is `NOT s.booked`, which partial indexes serve. The exclusion
constraint slots_no_overlap keeps one provider's slots apart; `overlapping` finds the
clash first so that the answer can name it.
"""
from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

_VIEW = """s.slot_id::text, s.provider_id::text, p.name AS provider, p.location, s.start_at, s.end_at,
    (SELECT r.referral_id::text FROM referral.referrals r WHERE r.slot_id = s.slot_id) AS referral_id
    FROM referral.slots s JOIN referral.providers p ON p.provider_id = s.provider_id"""

SlotKey = tuple[datetime, str]  # (start, slot_id): the sort key of slot lists


# -- providers --------------------------------------------------------------------------
def add_provider(conn: psycopg.Connection, name: str, specialty: str, location: str) -> dict:
    """Raises psycopg.errors.UniqueViolation when a provider of that name works at that location."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "INSERT INTO referral.providers (name, specialty, location) VALUES (%s, %s, %s)"
            " RETURNING provider_id::text, name, specialty, location, created_at",
            (name, specialty, location),
        ).fetchone()


def get_provider(conn: psycopg.Connection, provider_id: str) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT provider_id::text, name, specialty, location, created_at FROM referral.providers"
            " WHERE provider_id = %s",
            (provider_id,),
        ).fetchone()


def find_provider(conn: psycopg.Connection, name: str, location: str) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT provider_id::text, name, specialty, location, created_at FROM referral.providers"
            " WHERE name = %s AND location = %s",
            (name, location),
        ).fetchone()


def list_providers(conn: psycopg.Connection) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT provider_id::text, name, specialty, location, created_at"
                           " FROM referral.providers ORDER BY name, location, provider_id").fetchall()


# -- slots ------------------------------------------------------------------------------
def overlapping(conn: psycopg.Connection, provider_id: str,
                ranges: list[tuple[datetime, datetime]]) -> dict[int, dict]:
    """For each new (start, end) that overlaps a stored slot of the provider: index -> that slot."""
    if not ranges:
        return {}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT n.i - 1 AS index, s.slot_id::text, s.start_at, s.end_at"
            " FROM unnest(%s::timestamptz[], %s::timestamptz[]) WITH ORDINALITY AS n(start_at, end_at, i)"
            " JOIN referral.slots s ON s.provider_id = %s"
            "  AND tstzrange(s.start_at, s.end_at) && tstzrange(n.start_at, n.end_at)"
            " ORDER BY n.i, s.start_at",
            ([r[0] for r in ranges], [r[1] for r in ranges], provider_id),
        ).fetchall()
    found: dict[int, dict] = {}
    for row in rows:
        found.setdefault(row["index"], row)
    return found


def insert_slots(conn: psycopg.Connection, provider_id: str, ranges: list[tuple[datetime, datetime]],
                 *, skip_existing: bool = False) -> list[tuple[str, datetime]]:
    """Insert the slots; (slot_id, start) of each, in start order.

    skip_existing: a slot overlapping a stored one is left out instead of failing the whole
    insert (psycopg.errors.ExclusionViolation), which makes a repeated seed harmless."""
    if not ranges:
        return []
    conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
    rows = conn.execute(
        "INSERT INTO referral.slots (provider_id, start_at, end_at)"
        " SELECT %s, n.start_at, n.end_at FROM unnest(%s::timestamptz[], %s::timestamptz[]) AS n(start_at, end_at)"
        f"{conflict} RETURNING slot_id::text, start_at",
        (provider_id, [r[0] for r in ranges], [r[1] for r in ranges]),
    ).fetchall()
    return sorted(((slot_id, start) for slot_id, start in rows), key=lambda r: (r[1], r[0]))


COUNT_FREE = "SELECT count(*) FROM referral.slots s WHERE s.provider_id = %s AND s.start_at >= %s AND NOT s.booked"


def count_free(conn: psycopg.Connection, provider_id: str, *, since: datetime) -> int:
    return conn.execute(COUNT_FREE, (provider_id, since)).fetchone()[0]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _view(row: dict) -> dict:
    return {
        "slot_id": row["slot_id"],
        "provider_id": row["provider_id"],
        "provider": row["provider"],
        "location": row["location"],
        "start": _utc(row["start_at"]),
        "end": _utc(row["end_at"]),
        "free": row["referral_id"] is None,
        "referral_id": row["referral_id"],
    }


def slot_views(conn: psycopg.Connection, slot_ids: list[str]) -> list[dict]:
    """The slots (read after any booking in this transaction), in start order."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_VIEW} WHERE s.slot_id = ANY(%s::uuid[]) ORDER BY s.start_at, s.slot_id",
                           (slot_ids,)).fetchall()
    return [_view(row) for row in rows]


def slots_query(*, provider_id: str | None, free: bool | None, start_from: datetime | None,
                start_to: datetime | None, after: SlotKey | None, limit: int) -> tuple[sql.Composed, list]:
    """slots_page's SQL and parameters (one row more than `limit`, to tell if a next page exists)."""
    where: list[sql.Composable] = []
    params: list = []
    if provider_id:
        where.append(sql.SQL("s.provider_id = %s"))
        params.append(provider_id)
    if free is not None:
        where.append(sql.SQL("NOT s.booked" if free else "s.booked"))  # free: a partial index's predicate
    if start_from is not None:
        where.append(sql.SQL("s.start_at >= %s"))
        params.append(start_from)
    if start_to is not None:
        where.append(sql.SQL("s.start_at < %s"))
        params.append(start_to)
    if after is not None:
        where.append(sql.SQL("(s.start_at, s.slot_id) > (%s, %s)"))
        params.extend(after)
    query = sql.SQL("SELECT {view} {where} ORDER BY s.start_at, s.slot_id LIMIT %s").format(
        view=sql.SQL(_VIEW),
        where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )
    return query, [*params, limit + 1]


def slots_page(conn: psycopg.Connection, *, provider_id: str | None, free: bool | None,
               start_from: datetime | None, start_to: datetime | None, after: SlotKey | None,
               limit: int) -> tuple[list[dict], SlotKey | None]:
    """Slots by start time (start_from inclusive, start_to exclusive), keyset-paginated."""
    query, params = slots_query(provider_id=provider_id, free=free, start_from=start_from, start_to=start_to,
                                after=after, limit=limit)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    items = [_view(row) for row in rows[:limit]]
    next_key = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_key = (last["start_at"], last["slot_id"])
    return items, next_key
