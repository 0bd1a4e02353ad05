"""The FHIR interface's SQL: reads by id, and searches that page by keyset cursors.

Every search is one walk of an index in its sort order (migrations 001, 006 and 009), so a
page costs the same at any depth, as the queue's (store.queue_query). The walk's index by
criteria:

    ServiceRequest  (urgent first, then oldest)   referrals_queue*, referrals_by_mrn_key
                    with _lastUpdated: (updated_at, id)   referrals_by_update
    Appointment     (start, slot id)               slots_booked_by_start
    Slot            (start, slot id)               slots_by_start, slots_by_provider,
                                                   slots_free_by_start, slots_free_by_provider,
                                                   slots_booked_by_start
A criterion that is not the index's is a filter on that walk: e.g. status with
_lastUpdated walks the time range.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import sql

from services.common.db import pipelined

from ..domain import URGENT, mrn_key
from .records import Booking, FiredRule, HistoryRecord, ProviderRecord, ReferralRecord, ReportLink, SlotRecord
from .search import DateBound, Search

_REFERRAL = ("r.referral_id::text, r.patient_mrn, r.patient_display_name, r.priority, r.status, r.created_at,"
             " r.window_ends_at, r.updated_at, r.version, r.slot_id::text, r.pseudonymised_at, r.patient_language,"
             " r.patient_version, r.patient_changed_at")
_REFERRAL_COLUMNS = 14  # where a row's slot columns start, after the referral's
_SLOT_COLUMNS = 8
_SLOT = "s.slot_id::text, s.provider_id::text, s.start_at, s.end_at, s.booked, s.version, s.created_at, s.changed_at"
_PROVIDER = "p.provider_id::text, p.name, p.specialty, p.location, p.created_at"
OPEN = frozenset({"booked", "waitlisted"})

QUEUE_ORDER, UPDATE_ORDER, START_ORDER = "queue", "updated", "start"
# The types of each page order's key, for its cursors (services/referral/cursor.py).
KEY_TYPES = {QUEUE_ORDER: (int, datetime, uuid.UUID), UPDATE_ORDER: (datetime, uuid.UUID),
             START_ORDER: (datetime, uuid.UUID)}


def _referral(row) -> ReferralRecord:
    return ReferralRecord(*row[:_REFERRAL_COLUMNS])


def _slot(row) -> SlotRecord:
    return SlotRecord(*row[:_SLOT_COLUMNS])


def _provider(row) -> ProviderRecord:
    return ProviderRecord(*row[:5])


# -- reads ----------------------------------------------------------------------------------
def referral(conn: psycopg.Connection, referral_id: str) -> ReferralRecord | None:
    row = conn.execute(f"SELECT {_REFERRAL} FROM referral.referrals r WHERE r.referral_id = %s",
                       (referral_id,)).fetchone()
    return _referral(row) if row else None


# The reports (with the rules their decisions fired, migration 010) and history of referrals.
LINKS = ("SELECT referral_id::text, report_id::text, care_level, linked_at, position, fired"
         " FROM referral.referral_reports WHERE referral_id = ANY(%s::uuid[]) ORDER BY referral_id, position")
HISTORY = ("SELECT referral_id::text, sequence, at, actor, action, from_status, to_status, reason,"
           " from_slot_id::text, to_slot_id::text FROM referral.referral_history"
           " WHERE referral_id = ANY(%s::uuid[]) ORDER BY referral_id, sequence")


def links_and_history(conn: psycopg.Connection, referral_ids: list[str]
                      ) -> tuple[dict[str, list[ReportLink]], dict[str, list[HistoryRecord]]]:
    """The reports (link order) and history (oldest first) of each referral: two index scans,
    one round trip, whatever the number of referrals."""
    with pipelined(conn):
        links = conn.execute(LINKS, (referral_ids,))
        entries = conn.execute(HISTORY, (referral_ids,))
        link_rows, entry_rows = links.fetchall(), entries.fetchall()
    reports: dict[str, list[ReportLink]] = defaultdict(list)
    history: dict[str, list[HistoryRecord]] = defaultdict(list)
    for referral_id, *rest, fired in link_rows:
        reports[referral_id].append(ReportLink(*rest, fired=fired_rules(fired)))
    for referral_id, *rest in entry_rows:
        history[referral_id].append(HistoryRecord(*rest))
    return reports, history


def fired_rules(stored: list | None) -> tuple[FiredRule, ...] | None:
    """The fired column as stored (a list of {"id", "reason"}); None: not known."""
    return None if stored is None else tuple(FiredRule(rule["id"], rule["reason"]) for rule in stored)


def provider(conn: psycopg.Connection, provider_id: str) -> ProviderRecord | None:
    row = conn.execute(f"SELECT {_PROVIDER} FROM referral.providers p WHERE p.provider_id = %s",
                       (provider_id,)).fetchone()
    return _provider(row) if row else None


def slot(conn: psycopg.Connection, slot_id: str) -> SlotRecord | None:
    row = conn.execute(f"SELECT {_SLOT} FROM referral.slots s WHERE s.slot_id = %s", (slot_id,)).fetchone()
    return _slot(row) if row else None


# A referral's booking: the slot it holds, or (cancelled) the one its history last names.
_BOOKINGS = (
    f"SELECT {_REFERRAL}, {_SLOT}, {_PROVIDER} FROM referral.referrals r"
    " LEFT JOIN LATERAL (SELECT coalesce(h.to_slot_id, h.from_slot_id) AS slot_id FROM referral.referral_history h"
    "  WHERE h.referral_id = r.referral_id AND r.status = 'cancelled'"
    "  AND (h.to_slot_id IS NOT NULL OR h.from_slot_id IS NOT NULL) ORDER BY h.sequence DESC LIMIT 1) last ON true"
    " JOIN referral.slots s ON s.slot_id = coalesce(r.slot_id, last.slot_id)"
    " JOIN referral.providers p ON p.provider_id = s.provider_id"
    " WHERE r.referral_id = %s AND r.status IN ('booked', 'completed', 'cancelled')")


def _booking(row) -> Booking:
    return Booking(_referral(row), _slot(row[_REFERRAL_COLUMNS:]), _provider(row[_REFERRAL_COLUMNS + _SLOT_COLUMNS:]))


def booking(conn: psycopg.Connection, referral_id: str) -> Booking | None:
    row = conn.execute(_BOOKINGS, (referral_id,)).fetchone()
    return _booking(row) if row else None


# -- searches ---------------------------------------------------------------------------------
def _bounds(column: str, bounds: list[DateBound]) -> tuple[list[sql.Composable], list]:
    return ([sql.SQL(f"{column} {b.op} %s") for b in bounds], [b.at for b in bounds])


@dataclass(frozen=True)
class Query:
    """A search page's SQL (one row more than the page, to tell whether a next page exists),
    its parameters, and how to read the page order's key off a row."""

    sql: sql.Composable
    params: list
    count: int
    key_of: Callable[[tuple], tuple]


def _page(conn: psycopg.Connection, query: Query) -> tuple[list, tuple | None]:
    rows = conn.execute(query.sql, query.params).fetchall()
    count = query.count
    return rows[:count], (query.key_of(rows[count - 1]) if len(rows) > count else None)


def service_request_order(search: Search) -> str:
    """Oldest change first when the search is about changes, else the queue's order."""
    return UPDATE_ORDER if search.criteria.get("_lastUpdated") else QUEUE_ORDER


def service_requests(conn: psycopg.Connection, search: Search, after: tuple | None
                     ) -> tuple[list[ReferralRecord], tuple | None]:
    """A page of referrals and the key to continue after (service_request_order's order:
    (priority rank, created_at, id) or (updated_at, id))."""
    rows, next_key = _page(conn, service_request_query(search, after))
    return [_referral(row) for row in rows], next_key


def service_request_query(search: Search, after: tuple | None) -> Query:
    where: list[sql.Composable] = []
    params: list = []
    statuses = search.one("status")
    if statuses == OPEN:
        where.append(sql.SQL("r.status IN ('booked', 'waitlisted')"))  # referrals_queue_open's predicate
    elif statuses:
        where.append(sql.SQL("r.status = %s"))
        params.append(next(iter(statuses)))
    rank = None
    if priority := search.one("priority"):
        rank = 0 if priority == URGENT else 1
        where.append(sql.SQL("r.priority_rank = %s"))
        params.append(rank)
    if referral_id := search.one("patient"):
        where.append(sql.SQL("r.referral_id = %s"))
        params.append(referral_id)
    if mrn := search.one("patient.identifier"):
        where.append(sql.SQL("r.patient_mrn_key = %s"))
        params.append(mrn_key(mrn))
    clauses, values = _bounds("r.updated_at", search.bounds("_lastUpdated"))
    where += clauses
    params += values
    if service_request_order(search) == UPDATE_ORDER:
        order = "r.updated_at, r.referral_id"
        if after is not None:
            where.append(sql.SQL("(r.updated_at, r.referral_id) > (%s, %s)"))
            params += after

        def key_of(row):
            return (row[7], row[0])
    else:
        order = "r.priority_rank, r.created_at, r.referral_id"
        if after is not None:
            if rank is None:
                where.append(sql.SQL("(r.priority_rank, r.created_at, r.referral_id) > (%s, %s, %s)"))
                params += after
            elif after[0] == rank:
                # As store.queue_query: with the rank fixed, compare the rest of the key, or the
                # index scan is not positioned by the row comparison.
                where.append(sql.SQL("(r.created_at, r.referral_id) > (%s, %s)"))
                params += after[1:]
            elif after[0] > rank:
                where.append(sql.SQL("false"))

        def key_of(row):
            return (0 if row[3] == URGENT else 1, row[5], row[0])
    query = sql.SQL("SELECT {columns} FROM referral.referrals r {where} ORDER BY {order} LIMIT %s").format(
        columns=sql.SQL(_REFERRAL), where=_where(where), order=sql.SQL(order))
    return Query(query, [*params, search.count + 1], search.count, key_of)


def appointments(conn: psycopg.Connection, search: Search, after: tuple | None
                 ) -> tuple[list[Booking], tuple | None]:
    """A page of bookings in start order (start, slot id). By patient: that referral's booking,
    cancelled or not; else the slots booked and completed referrals hold (slots_booked_by_start)."""
    rows, next_key = _page(conn, appointment_query(search, after))
    return [_booking(row) for row in rows], next_key


def appointment_query(search: Search, after: tuple | None) -> Query:
    where: list[sql.Composable] = []
    params: list = []
    clauses, values = _bounds("s.start_at", search.bounds("date"))
    if statuses := search.one("status"):
        where.append(sql.SQL("r.status = %s"))
        params.append(next(iter(statuses)))
    where += clauses
    params += values
    if referral_id := search.one("patient"):
        # one referral, one booking at most: a single page
        query = sql.SQL(_BOOKINGS + "{also} LIMIT %s").format(
            also=sql.SQL("").join(sql.SQL(" AND ") + clause for clause in where))
        return Query(query, [referral_id, *params, search.count + 1], search.count, lambda row: None)
    if after is not None:
        where.append(sql.SQL("(s.start_at, s.slot_id) > (%s, %s)"))
        params += after
    query = sql.SQL(
        f"SELECT {_REFERRAL}, {_SLOT}, {_PROVIDER} FROM referral.slots s"
        " JOIN referral.referrals r ON r.slot_id = s.slot_id JOIN referral.providers p ON p.provider_id = s.provider_id"
        " {where} ORDER BY s.start_at, s.slot_id LIMIT %s").format(
        where=_where([sql.SQL("s.booked"), *where]))  # slots_booked_by_start's predicate
    return Query(query, [*params, search.count + 1], search.count,
                 lambda row: (row[_REFERRAL_COLUMNS + 2], row[_REFERRAL_COLUMNS]))  # the slot's start, id


def slots(conn: psycopg.Connection, search: Search, after: tuple | None) -> tuple[list[SlotRecord], tuple | None]:
    """A page of slots in start order (start, slot id)."""
    rows, next_key = _page(conn, slot_query(search, after))
    return [_slot(row) for row in rows], next_key


def slot_query(search: Search, after: tuple | None) -> Query:
    where: list[sql.Composable] = []
    params: list = []
    if provider_id := search.one("schedule"):
        where.append(sql.SQL("s.provider_id = %s"))
        params.append(provider_id)
    booked = search.one("status")
    if booked is not None:
        # the partial indexes' predicates, as written there
        where.append(sql.SQL("s.booked") if booked else sql.SQL("NOT s.booked"))
    clauses, values = _bounds("s.start_at", search.bounds("start"))
    where += clauses
    params += values
    if after is not None:
        where.append(sql.SQL("(s.start_at, s.slot_id) > (%s, %s)"))
        params += after
    query = sql.SQL(f"SELECT {_SLOT} FROM referral.slots s {{where}} ORDER BY s.start_at, s.slot_id LIMIT %s"
                    ).format(where=_where(where))
    return Query(query, [*params, search.count + 1], search.count, lambda row: (row[2], row[0]))


def _where(clauses: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("WHERE ") + sql.SQL(" AND ").join(clauses) if clauses else sql.SQL("")

