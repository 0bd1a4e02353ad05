"""Referral's SQL for referrals: loading them as policy values (locked when they are about
to change), storing a policy `ReferralChange`, the queue and the read views.

Every booking path locks the slot row before giving it to a referral; the unique index on
referrals.slot_id is the backstop that makes a double booking fail, whatever the code does.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.common.db import pipelined
from services.common.retention import DueSummary, RetentionPolicy

from . import contact_store, retention
from .domain import URGENT, Referral, ReferralChange, Slot, is_breached, mrn_key


# Every open/close path that could leave a free slot and a waitlisted referral passing
# each other takes this lock (see booking.py); arbitrary key, b"rfwaitls".
WAITLIST_LOCK_KEY = 0x726677616974_6C73

# Loaded into a policy value: report ids in link order, the first one opened the referral.
_REFERRAL = """r.referral_id::text, r.patient_mrn, r.priority, r.status, r.created_at, r.window_ends_at,
    r.slot_id::text,
    ARRAY(SELECT rr.report_id::text FROM referral.referral_reports rr
          WHERE rr.referral_id = r.referral_id ORDER BY rr.position),
    r.patient_birth_date, r.possible_duplicate_of::text, r.possible_duplicate_mrn, r.patient_language"""

# A referral that keeps changing under us while we wait is left to the next offer.
CLAIM_ATTEMPTS = 5

_SLOT = "s.slot_id::text, s.provider_id::text, s.start_at, s.end_at"


def _referral(row) -> Referral:
    (referral_id, mrn, priority, status, created_at, window_ends_at, slot_id, report_ids, born, duplicate_of,
     duplicate_mrn, language) = row
    return Referral(referral_id=referral_id, patient_mrn=mrn, priority=priority, status=status,
                    created_at=created_at, window_ends_at=window_ends_at, slot_id=slot_id,
                    report_ids=tuple(report_ids), patient_birth_date=born, possible_duplicate_of=duplicate_of,
                    possible_duplicate_mrn=duplicate_mrn, patient_language=language)


def care_level_of(priority: str) -> str:
    """A referral's care level follows its priority (a raise to urgent raises both)."""
    return "urgent" if priority == URGENT else "specialist"


# -- locks and loads --------------------------------------------------------------------
def lock_waitlist(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (WAITLIST_LOCK_KEY,))


def _lock_then_load(conn: psycopg.Connection, referral_id: str, condition: str, params: tuple) -> Referral | None:
    """Lock one referral (if `condition` still holds), then read it whole in a second statement.

    In one statement, a transaction that waited for the lock would see the referral row as
    its holder committed it, but the linked reports (a subquery) as of before: a report the
    holder linked would be missing from our list, and the one we link would then be lost
    (as lock_slot, for the same reason). The two go in one pipeline (one round trip): the
    server runs the read after the lock is granted, with a snapshot of its own."""
    with pipelined(conn):
        lock = conn.execute(
            f"SELECT r.referral_id FROM referral.referrals r WHERE r.referral_id = %s AND {condition}"
            " FOR UPDATE OF r", (referral_id, *params))
        load = conn.execute(f"SELECT {_REFERRAL} FROM referral.referrals r WHERE r.referral_id = %s",
                            (referral_id,))
        locked, row = lock.fetchone(), load.fetchone()
    return _referral(row) if locked is not None and row is not None else None


def _open_with_mrn(where_mrn: str) -> str:
    return (f"SELECT {_REFERRAL} FROM referral.referrals r"
            f" WHERE {where_mrn} AND r.status IN ('booked', 'waitlisted') ORDER BY r.created_at, r.referral_id")


def open_referrals_with_mrn(conn: psycopg.Connection, patient_mrn: str) -> list[Referral]:
    """Every open referral whose compared MRN (domain.mrn_key) is the report's, oldest first,
    not locked: the candidates the policy matches the patient against (by birth date). The
    one it picks is then locked (lock_open_referral); the others are only named in a flag,
    and locking them would hold another patient's referral while waiting for the waitlist."""
    rows = conn.execute(_open_with_mrn("r.patient_mrn_key = %s"), (mrn_key(patient_mrn),)).fetchall()
    return [_referral(row) for row in rows]


@dataclass(frozen=True)
class DecisionContext:
    """What a decision is checked against first (decision_context)."""

    linked_to: str | None          # the referral the report is linked to already
    candidates: list[Referral]     # open_referrals_with_mrn
    # The claim made for a new patient in the same round trip: `claimed` when the report was
    # unlinked and no open referral had its MRN key (then `slot`: the earliest free slot of
    # [now, claim_until], locked, or None when none was free; `place`: its provider's name
    # and location; `has_messages`: whether a patient message names `new_referral_id`).
    claimed: bool = False
    slot: Slot | None = None
    place: tuple[str, str] | None = None
    has_messages: bool = False


def decision_context(conn: psycopg.Connection, report_id: str, patient_mrn: str, *,
                     claim_from: datetime | None = None, claim_until: datetime | None = None,
                     new_referral_id: str | None = None) -> DecisionContext:
    """The report's referral, the open referrals with its MRN and, given a window, the slot
    a new patient's referral would get (claim_free_slot): in one round trip.

    The claim is conditional, in SQL: only when the report is unlinked and no open referral
    has the MRN key, i.e. when the decision makes a new referral. So no slot is locked for a
    report that joins a referral (which would lock a slot, then a referral: the reverse of
    a reschedule's order). Each statement reads its own snapshot: should they disagree (a
    referral opened or closed between them), the caller claims again or leaves the slot."""
    key = mrn_key(patient_mrn)
    with pipelined(conn):
        linked = conn.execute("SELECT referral_id::text FROM referral.referral_reports WHERE report_id = %s",
                              (report_id,))
        candidates = conn.execute(_open_with_mrn("r.patient_mrn_key = %s"), (key,))
        claim = None
        if claim_from is not None and claim_until is not None:
            claim = conn.execute(_CLAIM_FOR_NEW_PATIENT, {"report": report_id, "key": key, "from": claim_from,
                                                          "until": claim_until, "referral": new_referral_id})
        row, rows = linked.fetchone(), candidates.fetchall()
        claimed = claim.fetchone() if claim is not None else None
    context = DecisionContext(linked_to=row[0] if row else None, candidates=[_referral(r) for r in rows])
    if claimed is not None and claimed[0]:
        has_messages, found = claimed[1], claimed[2] is not None
        context = DecisionContext(context.linked_to, context.candidates, claimed=True,
                                  slot=Slot(*claimed[2:6]) if found else None,
                                  place=(claimed[6], claimed[7]) if found else None, has_messages=has_messages)
    return context


def lock_open_referral(conn: psycopg.Connection, referral_id: str) -> Referral | None:
    """The referral, locked and read after the lock, if it is still open."""
    return _lock_then_load(conn, referral_id, "r.status IN ('booked', 'waitlisted')", ())


def lock_referral(conn: psycopg.Connection, referral_id: str) -> Referral | None:
    return _lock_then_load(conn, referral_id, "true", ())


def lock_slot(conn: psycopg.Connection, slot_id: str, *, nowait: bool = False) -> Slot | None:
    """The slot, locked, with who holds it read *after* the lock was granted.

    Two statements on purpose: in one, the holder would be read from the snapshot taken
    before a concurrent booking committed and released the lock. They go in one pipeline
    (one round trip): the server runs the second once the first has its lock. `nowait`:
    psycopg.errors.LockNotAvailable at once if another transaction holds the slot."""
    with pipelined(conn):
        lock = conn.execute(f"SELECT {_SLOT} FROM referral.slots s WHERE s.slot_id = %s FOR UPDATE OF s"
                            + (" NOWAIT" if nowait else ""), (slot_id,))
        holder_query = conn.execute("SELECT referral_id::text FROM referral.referrals WHERE slot_id = %s",
                                    (slot_id,))
        row, holder = lock.fetchone(), holder_query.fetchone()
    if row is None:
        return None
    return Slot(*row, booked_by=holder[0] if holder else None)


def get_slot(conn: psycopg.Connection, slot_id: str) -> Slot | None:
    row = conn.execute(
        f"SELECT {_SLOT}, (SELECT r.referral_id::text FROM referral.referrals r WHERE r.slot_id = s.slot_id)"
        " FROM referral.slots s WHERE s.slot_id = %s",
        (slot_id,),
    ).fetchone()
    return Slot(*row[:4], booked_by=row[4]) if row else None


# No filter on the provider's specialty: providers' CHECK allows one specialty, pain
# management, so every slot is one of its slots (test_referral_slot_plan checks the CHECK
# still says so). A filter on the provider (join, EXISTS or subquery, all tried) makes the
# planner, on slots not analyzed yet (as after a first import of slots), read every free
# slot of the window and sort them all: 4-14 ms a claim at 3,800 free slots, 80% of the
# worker's server time in bench_worker_drain. Without it the claim is one seek of
# slots_free_by_start, stopping at its first entry, whatever the statistics say.
_CLAIM = (
    "SELECT {columns} FROM referral.slots s"
    " WHERE s.start_at >= {from_} AND s.start_at <= {until} AND NOT s.booked{also}"
    " ORDER BY s.start_at, s.slot_id LIMIT 1 FOR UPDATE OF s SKIP LOCKED")
CLAIM_FREE_SLOT = _CLAIM.format(columns=_SLOT, from_="%s", until="%s", also="")
# decision_context's claim: the same, only for a report that makes a new referral; one row:
# new patient?, a patient message naming the new referral's id?, then the slot's columns
# and its provider's name and location (NULL when none was claimed).
_CLAIM_FOR_NEW_PATIENT = (
    "WITH new_patient AS (SELECT"
    "  NOT EXISTS (SELECT 1 FROM referral.referral_reports WHERE report_id = %(report)s)"
    "  AND NOT EXISTS (SELECT 1 FROM referral.referrals r WHERE r.patient_mrn_key = %(key)s"
    "                  AND r.status IN ('booked', 'waitlisted')) AS yes),"
    " claimed AS (" + _CLAIM.format(columns="s.slot_id, s.provider_id, s.start_at, s.end_at", from_="%(from)s",
                                    until="%(until)s", also=" AND (SELECT yes FROM new_patient)") + ")"
    " SELECT n.yes, EXISTS (SELECT 1 FROM referral.patient_messages m WHERE m.referral_id = %(referral)s),"
    "  c.slot_id::text, c.provider_id::text, c.start_at, c.end_at, p.name, p.location"
    " FROM new_patient n LEFT JOIN claimed c ON true LEFT JOIN referral.providers p ON p.provider_id = c.provider_id")


def claim_free_slot(conn: psycopg.Connection, now: datetime, until: datetime) -> Slot | None:
    """Lock the earliest free pain-management slot starting in [now, until], or None.

    Free is the slot's `booked` marker, which the database keeps equal to "a referral holds
    it" (migrations/006), so this is one seek of the partial index slots_free_by_start,
    however many slots are held. SKIP LOCKED: a slot another transaction is booking right
    now is passed over rather than waited for. One whose booking committed after our
    snapshot is re-read once locked, marked, and passed over too; whatever slips through,
    our insert hits the unique index on referrals.slot_id and the whole event is retried."""
    row = conn.execute(CLAIM_FREE_SLOT, (now, until)).fetchone()
    return Slot(*row) if row else None


@dataclass(frozen=True)
class Claim:
    """One window's answer from claim_slots: `new_patient` and `has_messages` (None when not
    asked), and the slot claimed for it (locked) with its provider's name and location, or None."""

    new_patient: bool | None
    has_messages: bool | None
    slot: Slot | None
    place: tuple[str, str] | None


def claim_slots(conn: psycopg.Connection, now: datetime, untils: list[datetime], *,
                report_ids: list[str] | None = None, patient_mrns: list[str] | None = None,
                new_referral_ids: list[str] | None = None) -> list[Claim]:
    """For each window [now, untils[i]] in order, the slot claim_free_slot would give it if
    each earlier window had booked its own first (migrations/008, referral.claim_slots), in
    one statement. With the windows' reports and MRNs, only new patients' windows are
    claimed, and the first that is not new ends the list (its Claim says so). With the ids
    the new referrals will have: whether a patient message names each already."""
    keys = None if patient_mrns is None else [mrn_key(m) for m in patient_mrns]
    rows = conn.execute(
        "SELECT new_patient, has_messages, claimed_slot_id::text, claimed_provider_id::text, claimed_start,"
        " claimed_end, provider_name, provider_location"
        " FROM referral.claim_slots(%b, %b::timestamptz[], %b::uuid[], %b::text[], %b::uuid[]) ORDER BY ordinal",
        (now, untils, report_ids, keys, new_referral_ids)).fetchall()
    claims = []
    for new_patient, has_messages, slot_id, provider_id, start, end, name, location in rows:
        found = slot_id is not None
        claims.append(Claim(new_patient, has_messages, Slot(slot_id, provider_id, start, end) if found else None,
                            (name, location) if found else None))
    return claims


def claim_waitlisted_for(conn: psycopg.Connection, slot: Slot, now: datetime) -> list[Referral]:
    """Lock the first waitlisted referral (urgent, then oldest) whose window holds the slot.

    Returned as a list for the policy, which makes the final choice. Not SKIP LOCKED: the
    rightful referral may be locked for a moment (a worker linking a report to it), and
    skipping it would hand the slot to someone further down the line. So: find it, wait
    for its lock, and look again if it changed meanwhile."""
    if slot.start < now:
        return []  # a slot that has started is never booked automatically
    for _ in range(CLAIM_ATTEMPTS):
        first = conn.execute(
            "SELECT referral_id FROM referral.referrals"
            " WHERE status = 'waitlisted' AND window_ends_at >= %s"
            " ORDER BY priority_rank, created_at, referral_id LIMIT 1",
            (slot.start,),
        ).fetchone()
        if first is None:
            return []
        referral = _lock_then_load(conn, str(first[0]), "r.status = 'waitlisted' AND r.window_ends_at >= %s",
                                   (slot.start,))
        if referral is not None:
            return [referral]
    return []


# -- storing a change -------------------------------------------------------------------
class StaleReferral(RuntimeError):
    """A change was computed from an out-of-date copy of the referral (a bug if ever raised)."""


def save_change(conn: psycopg.Connection, change: ReferralChange, *, created: bool = False,
                patient_name: str | None = None, care_levels: dict[str, str] | None = None,
                linked_at: datetime | None = None) -> int:
    """Store the changed referral, its new report links and history entries; the new version.

    `care_levels` gives the care level of each report the change links for the first time.
    A slot already held by another referral, a second open referral for the patient, or a
    second unflagged open referral for the MRN (see migrations/002) raises
    psycopg.errors.UniqueViolation: the caller's transaction is then void."""
    with pipelined(conn):  # its writes go with the next read (or sync): none waits on its own
        return _save_change(conn, change, created=created, patient_name=patient_name, care_levels=care_levels,
                            linked_at=linked_at)


def _save_change(conn: psycopg.Connection, change: ReferralChange, *, created: bool, patient_name: str | None,
                 care_levels: dict[str, str] | None, linked_at: datetime | None) -> int:
    referral, entries = change.referral, change.history
    if created:
        conn.execute(
            "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_mrn_key, patient_birth_date,"
            " possible_duplicate_of, possible_duplicate_mrn, patient_display_name, priority, status, slot_id,"
            " created_at, window_ends_at, version, updated_at, patient_language)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (referral.referral_id, referral.patient_mrn, mrn_key(referral.patient_mrn), referral.patient_birth_date,
             referral.possible_duplicate_of, referral.possible_duplicate_mrn, patient_name, referral.priority, referral.status,
             referral.slot_id, referral.created_at, referral.window_ends_at, len(entries), entries[-1].at,
             referral.patient_language),
        )
        version = len(entries)
        known = 0
    else:
        # The language is the policy's (a link sets the newest report's); a change of the
        # patient moves the FHIR Patient's version and time.
        updated = conn.execute(
            "UPDATE referral.referrals SET priority = %s, status = %s, slot_id = %s, window_ends_at = %s,"
            " version = version + %s, updated_at = %s, patient_language = %s,"
            " patient_version = patient_version + %s::integer,"
            " patient_changed_at = CASE WHEN %s THEN %s ELSE patient_changed_at END"
            " WHERE referral_id = %s RETURNING version",
            (referral.priority, referral.status, referral.slot_id, referral.window_ends_at, len(entries),
             entries[-1].at, referral.patient_language, change.patient_changed, change.patient_changed,
             entries[-1].at, referral.referral_id),
        )
        linked = conn.execute(
            "SELECT report_id::text FROM referral.referral_reports WHERE referral_id = %s ORDER BY position",
            (referral.referral_id,))
        version = updated.fetchone()[0]  # one round trip for both
        stored = [row[0] for row in linked.fetchall()]
        known = len(stored)
        if list(referral.report_ids[:known]) != stored:
            # Changed from a stale read: fail (the transaction rolls back, the event is
            # retried) rather than drop a link.
            raise StaleReferral(f"referral {referral.referral_id} was read without its latest linked reports")
    new_reports = referral.report_ids[known:]
    if new_reports:
        levels = care_levels or {}
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO referral.referral_reports (report_id, referral_id, position, care_level, linked_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(report_id, referral.referral_id, known + i, levels[report_id], linked_at or entries[-1].at)
                 for i, report_id in enumerate(new_reports)],
            )
    first = version - len(entries) + 1
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO referral.referral_history (referral_id, sequence, at, actor, action, from_status,"
            " to_status, reason, from_slot_id, to_slot_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(e.referral_id, first + i, e.at, e.actor, e.action, e.from_status, e.to_status, e.reason,
              e.from_slot_id, e.to_slot_id) for i, e in enumerate(entries)],
        )
    return version


def save_created(conn: psycopg.Connection, created: list[tuple[ReferralChange, str, dict[str, str]]],
                 fired: dict[str, Sequence[dict] | None] | None = None) -> None:
    """Store new referrals with their reports and history, as save_change(change, created=True,
    patient_name=..., care_levels=...) would one by one, in three statements whatever their
    number. `created`: (change, patient name, care level of each report); `fired`: the rules each
    report's decision fired ({"id", "reason"}; a report missing: not known, NULL). The unique
    indexes refuse what they refuse one by one (a UniqueViolation voids the transaction)."""
    if not created:
        return
    fired = fired or {}
    referrals = [change.referral for change, _name, _levels in created]
    links = [(r.referral_id, report_id, position, levels[report_id], change.history[-1].at,
              _fired_json(fired.get(report_id)))
             for (change, _name, levels), r in zip(created, referrals)
             for position, report_id in enumerate(r.report_ids)]
    entries = [(sequence, entry) for change, _name, _levels in created
               for sequence, entry in enumerate(change.history, start=1)]
    conn.execute(
        "INSERT INTO referral.referrals (referral_id, patient_mrn, patient_mrn_key, patient_birth_date,"
        " possible_duplicate_of, possible_duplicate_mrn, patient_display_name, priority, status, slot_id,"
        " created_at, window_ends_at, version, updated_at, patient_language)"
        " SELECT * FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::date[], %b::uuid[], %b::text[], %b::text[],"
        "  %b::text[], %b::text[], %b::uuid[], %b::timestamptz[], %b::timestamptz[], %b::integer[], %b::timestamptz[],"
        "  %b::text[])",
        ([r.referral_id for r in referrals], [r.patient_mrn for r in referrals],
         [mrn_key(r.patient_mrn) for r in referrals], [r.patient_birth_date for r in referrals],
         [r.possible_duplicate_of for r in referrals], [r.possible_duplicate_mrn for r in referrals],
         [name for _change, name, _levels in created], [r.priority for r in referrals],
         [r.status for r in referrals], [r.slot_id for r in referrals], [r.created_at for r in referrals],
         [r.window_ends_at for r in referrals], [len(change.history) for change, _name, _levels in created],
         [change.history[-1].at for change, _name, _levels in created], [r.patient_language for r in referrals]))
    conn.execute(
        "INSERT INTO referral.referral_reports (report_id, referral_id, position, care_level, linked_at, fired)"
        " SELECT report_id, referral_id, position, care_level, linked_at, fired"
        " FROM unnest(%b::uuid[], %b::uuid[], %b::integer[], %b::text[], %b::timestamptz[], %b::jsonb[])"
        "  AS v (referral_id, report_id, position, care_level, linked_at, fired)",
        tuple(list(column) for column in zip(*links)))
    conn.execute(
        "INSERT INTO referral.referral_history (referral_id, sequence, at, actor, action, from_status,"
        " to_status, reason, from_slot_id, to_slot_id)"
        " SELECT * FROM unnest(%b::uuid[], %b::integer[], %b::timestamptz[], %b::text[], %b::text[], %b::text[],"
        "  %b::text[], %b::text[], %b::uuid[], %b::uuid[])",
        ([e.referral_id for _s, e in entries], [sequence for sequence, _e in entries], [e.at for _s, e in entries],
         [e.actor for _s, e in entries], [e.action for _s, e in entries], [e.from_status for _s, e in entries],
         [e.to_status for _s, e in entries], [e.reason for _s, e in entries],
         [e.from_slot_id for _s, e in entries], [e.to_slot_id for _s, e in entries]))


def record_fired(conn: psycopg.Connection, report_id: str, fired: Sequence[dict]) -> None:
    """Keep the rules a report's decision fired with its link, when the link does not have them
    yet (a decision applied by booking.apply_decision, which is not handed them). Nothing to
    fetch: in a pipeline it waits for nothing."""
    conn.execute("UPDATE referral.referral_reports SET fired = %s WHERE report_id = %s AND fired IS NULL",
                 (_fired_json(fired), report_id))


def _fired_json(fired: Sequence[dict] | None) -> Jsonb | None:
    return None if fired is None else Jsonb([{"id": rule["id"], "reason": rule["reason"]} for rule in fired])


# -- read views -------------------------------------------------------------------------
_VIEW = """r.referral_id::text, r.patient_mrn, r.patient_display_name, r.priority, r.status,
    r.created_at, r.window_ends_at, r.updated_at, r.version, r.priority_rank,
    ARRAY(SELECT rr.report_id::text FROM referral.referral_reports rr
          WHERE rr.referral_id = r.referral_id ORDER BY rr.position) AS report_ids,
    s.slot_id::text AS slot_id, s.start_at, s.end_at, p.name AS provider, p.location,
    r.possible_duplicate_of::text AS duplicate_of_id, r.possible_duplicate_mrn AS duplicate_of_mrn,
    r.contact_needed, r.contacted_at, r.patient_language
    FROM referral.referrals r
    LEFT JOIN referral.slots s ON s.slot_id = r.slot_id
    LEFT JOIN referral.providers p ON p.provider_id = s.provider_id"""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _view(row: dict, now: datetime) -> dict:
    appointment = None
    if row["slot_id"] is not None:
        appointment = {"slot_id": row["slot_id"], "start": _utc(row["start_at"]), "end": _utc(row["end_at"]),
                       "provider": row["provider"], "location": row["location"]}
    referral = Referral(referral_id=row["referral_id"], patient_mrn=row["patient_mrn"], priority=row["priority"],
                        status=row["status"], created_at=row["created_at"], window_ends_at=row["window_ends_at"],
                        slot_id=row["slot_id"], report_ids=tuple(row["report_ids"]))
    return {
        "referral_id": row["referral_id"],
        "report_id": row["report_ids"][0],
        "report_ids": list(row["report_ids"]),
        "patient": {"mrn": row["patient_mrn"], "display_name": row["patient_display_name"],
                    "language": row["patient_language"]},
        "care_level": care_level_of(row["priority"]),
        "priority": row["priority"],
        "status": row["status"],
        "created_at": _utc(row["created_at"]),
        "updated_at": _utc(row["updated_at"]),
        "window_ends_at": _utc(row["window_ends_at"]),
        "breached": is_breached(referral, now),
        "appointment": appointment,
        "sequence": row["version"],
        "priority_rank": row["priority_rank"],
        # For schedulers only (never in events): the other referral's id and MRN, not its name.
        "possible_duplicate_of": None if row["duplicate_of_id"] is None else {
            "referral_id": row["duplicate_of_id"], "mrn": row["duplicate_of_mrn"]},
        # For schedulers only (never in events); contact_store.add_messages adds the messages.
        "contact": {"needed": row["contact_needed"], "callback_phone": None,
                    "contacted_at": None if row["contacted_at"] is None else _utc(row["contacted_at"]),
                    "messages": []},
    }


def referral_view(conn: psycopg.Connection, referral_id: str, now: datetime) -> dict | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT {_VIEW} WHERE r.referral_id = %s", (referral_id,)).fetchone()
    return _view(row, now) if row else None


def created_referral_view(change: ReferralChange, *, patient_name: str, slot: Slot | None,
                          place: tuple[str, str] | None, now: datetime) -> dict:
    """referral_view of a referral save_change has just created, from what was stored (no
    read): its change, and the slot it was booked into with that slot's provider (name,
    location). The same function as referral_view makes it, from the columns the view
    would have read."""
    referral, entries = change.referral, change.history
    if (slot is None) != (referral.slot_id is None) or (slot is not None and slot.slot_id != referral.slot_id):
        raise ValueError("the slot given is not the one the new referral holds")
    row = {
        "referral_id": referral.referral_id, "patient_mrn": referral.patient_mrn, "patient_display_name": patient_name,
        "priority": referral.priority, "status": referral.status, "created_at": referral.created_at,
        "window_ends_at": referral.window_ends_at, "updated_at": entries[-1].at, "version": len(entries),
        "priority_rank": 0 if referral.priority == URGENT else 1, "report_ids": list(referral.report_ids),
        "slot_id": referral.slot_id, "start_at": slot.start if slot else None, "end_at": slot.end if slot else None,
        "provider": place[0] if slot else None, "location": place[1] if slot else None,
        "duplicate_of_id": referral.possible_duplicate_of, "duplicate_of_mrn": referral.possible_duplicate_mrn,
        "contact_needed": False, "contacted_at": None,  # the columns' defaults
        "patient_language": referral.patient_language,
    }
    return _view(row, now)


def changed_referral_view(conn: psycopg.Connection, referral_id: str, now: datetime) -> tuple[dict, bool]:
    """referral_view of a referral just stored, and whether any patient message names it:
    one read (a new referral's contact flag needs its messages only if there are some)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT EXISTS (SELECT 1 FROM referral.patient_messages m WHERE m.referral_id = r.referral_id)"
            f" AS has_messages, {_VIEW} WHERE r.referral_id = %s", (referral_id,)).fetchone()
    return _view(row, now), row["has_messages"]


def history(conn: psycopg.Connection, referral_id: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT sequence, at, actor, action, from_status, to_status, reason,"
            " from_slot_id::text, to_slot_id::text FROM referral.referral_history"
            " WHERE referral_id = %s ORDER BY sequence",
            (referral_id,),
        ).fetchall()
    return [{**row, "at": _utc(row["at"])} for row in rows]


@dataclass(frozen=True)
class QueueFilter:
    status: str | None = None      # one status, or "open" (booked or waitlisted)
    priority: str | None = None
    report_id: str | None = None
    review: str | None = None       # "possible_duplicate": flagged referrals only
    contact_needed: bool | None = None  # True/False: only referrals whose patient must (not) be phoned


REVIEW_POSSIBLE_DUPLICATE = "possible_duplicate"

QueueKey = tuple[int, datetime, str]  # (priority rank, created_at, referral_id): the sort key


def queue_query(filters: QueueFilter, *, after: QueueKey | None, limit: int) -> tuple[sql.Composed, list]:
    """The queue's SQL and parameters (one row more than `limit`, to tell if a next page exists).

    Keyset pagination on (priority_rank, created_at, referral_id), which one of the
    referrals_queue* indexes matches for every filter shape, so a page costs the same at
    any depth: no sort, no offset."""
    where: list[sql.Composable] = []
    params: list = []
    if filters.status == "open":
        where.append(sql.SQL("r.status IN ('booked', 'waitlisted')"))  # the partial index's predicate
    elif filters.status:
        where.append(sql.SQL("r.status = %s"))
        params.append(filters.status)
    if filters.priority:
        where.append(sql.SQL("r.priority_rank = %s"))
        params.append(0 if filters.priority == URGENT else 1)
    if filters.review == REVIEW_POSSIBLE_DUPLICATE:
        where.append(sql.SQL("r.possible_duplicate_of IS NOT NULL"))  # the partial index's predicate
    if filters.contact_needed is not None:
        # true: the partial index's predicate; false: a filter on any other index's walk
        where.append(sql.SQL("r.contact_needed") if filters.contact_needed else sql.SQL("NOT r.contact_needed"))
    if filters.report_id:
        where.append(sql.SQL("r.referral_id = (SELECT rr.referral_id FROM referral.referral_reports rr"
                             " WHERE rr.report_id = %s)"))
        params.append(filters.report_id)
    if after is not None:
        rank = None if not filters.priority else (0 if filters.priority == URGENT else 1)
        if rank is None:
            where.append(sql.SQL("(r.priority_rank, r.created_at, r.referral_id) > (%s, %s, %s)"))
            params.extend(after)
        elif after[0] == rank:
            # The filter fixes the rank, so compare the rest of the key. PostgreSQL does not
            # position an index scan with a row comparison that starts on a column an equality
            # already fixes: it would read every entry of that rank in front of the cursor.
            where.append(sql.SQL("(r.created_at, r.referral_id) > (%s, %s)"))
            params.extend(after[1:])
        elif after[0] > rank:
            where.append(sql.SQL("false"))  # the cursor lies past every row of this rank
        # (a cursor before this rank: every row of the rank comes after it)
    query = sql.SQL("SELECT {view} {where} ORDER BY r.priority_rank, r.created_at, r.referral_id LIMIT %s").format(
        view=sql.SQL(_VIEW),
        where=sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )
    return query, [*params, limit + 1]


def queue_page(conn: psycopg.Connection, filters: QueueFilter, *, after: QueueKey | None, limit: int,
               now: datetime) -> tuple[list[dict], QueueKey | None]:
    """One page of the queue, urgent first then oldest, and the key to continue after."""
    query, params = queue_query(filters, after=after, limit=limit)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    items = [_view(row, now) for row in rows[:limit]]
    next_key = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_key = (last["priority_rank"], last["created_at"], last["referral_id"])
    return items, next_key


# -- retention (services/referral/retention.py decides; README "Data protection") --------
_IDENTITY_DUE = ("status IN ('cancelled', 'completed') AND pseudonymised_at IS NULL"
                 " AND updated_at <= now() - %(days)s * interval '1 day'")


def identity_due(conn: psycopg.Connection, policy: RetentionPolicy) -> DueSummary:
    """How many closed referrals are due to lose their patient's identity, and the oldest."""
    count, oldest = conn.execute(
        f"SELECT count(*), min(updated_at) FROM referral.referrals WHERE {_IDENTITY_DUE}",
        {"days": policy.identity_days}).fetchone()
    return DueSummary(service="referral", table="referral.referrals", due=count, oldest_closed_at=oldest)


def pseudonymise_batch(conn: psycopg.Connection, policy: RetentionPolicy, key: bytes | None, limit: int) -> int:
    """Pseudonymise up to `limit` due referrals in one transaction; how many it did.

    FOR UPDATE SKIP LOCKED: two purges take different rows and never wait; booking never
    touches a closed referral, so nothing else waits for these locks either. The guard on
    pseudonymised_at makes a second run change nothing."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT referral_id, patient_mrn, possible_duplicate_mrn, status, updated_at, pseudonymised_at, now()"
            f" FROM referral.referrals WHERE {_IDENTITY_DUE}"
            " ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
            {"days": policy.identity_days, "limit": limit}).fetchall()
        values = []
        for referral_id, mrn, duplicate_mrn, status, updated_at, pseudonymised_at, now in rows:
            if retention.is_due(policy, status=status, updated_at=updated_at, pseudonymised_at=pseudonymised_at,
                                now=now):
                new = retention.pseudonymised_identity(mrn=mrn, duplicate_mrn=duplicate_mrn, key=key)
                values.append((referral_id, new["patient_mrn"], new["patient_display_name"],
                               new["possible_duplicate_mrn"]))
        if not values:
            return 0
        ids, mrns, names, duplicate_mrns = (list(column) for column in zip(*values))
        contact_store.forget_identity(conn, ids)  # the phone to call back on, contact notes
        return conn.execute(
            "UPDATE referral.referrals r SET patient_mrn = v.mrn, patient_mrn_key = v.mrn,"
            " patient_display_name = v.name, patient_birth_date = NULL, possible_duplicate_mrn = v.duplicate_mrn,"
            " pseudonymised_at = now()"
            " FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[]) AS v(referral_id, mrn, name, duplicate_mrn)"
            # the ANY() lets the planner find the rows by primary key, not by a scan of the table
            " WHERE r.referral_id = ANY(%s::uuid[]) AND r.referral_id = v.referral_id AND r.pseudonymised_at IS NULL",
            (ids, mrns, names, duplicate_mrns, ids)).rowcount
