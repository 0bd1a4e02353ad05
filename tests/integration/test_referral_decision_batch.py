"""The referral worker's decisions a run at a time (services/referral/decision_batch.py, issue
15) on the real database: the same decisions applied as one batch and one by one
(booking.apply_decision, in order) leave the same rows, write the same events in the same
order and log the same lines (ids and event ids aside); the batch waits for the server a
fixed number of times however many new patients it books; workers racing keep one booking
per slot, no free slot beside a waitlisted referral it fits, and one referral per patient."""
from __future__ import annotations

import logging
import random
import re
import tempfile
import threading
import uuid
from datetime import timedelta
from unittest import mock

import psycopg
import pytest
from psycopg import errors, pq

from tests.referral_support import (BUBBLE_SPACING, add_slots, decide, decision_event, fhir_as_the_snapshot_says,
                                    mrn, new_provider, next_bubble)

from services.common.inbox import Delivery
from services.common.settings import TOPIC_DECISIONS
from services.referral import booking, decision_batch

pytestmark = pytest.mark.integration

D = timedelta(days=1)
H = timedelta(hours=1)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER_BIRTH_DATE = "1985-07-30"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def prepared(event: dict) -> decision_batch.Prepared:
    delivery = Delivery(topic=TOPIC_DECISIONS, partition=0, offset=0, key=event["data"]["report_id"],
                        traceparent=TRACEPARENT)
    return decision_batch.prepare(event, delivery)


def one_by_one(conn, batch: list[decision_batch.Prepared], now) -> None:
    """What the worker did before batches: booking.apply_decision for each, in order."""
    for p in batch:
        if p.decision.care_level != "self_care":
            booking.apply_decision(conn, p.decision, now, p.traceparent)


def together(conn, batch: list[decision_batch.Prepared], now) -> None:
    decision_batch.write(conn, batch, now=now)


class Names:
    """Referral ids as the test sees them: those made by the run named after their first report."""

    def __init__(self, conn, known: set[str]):
        self.known = known
        self.names = dict(conn.execute(
            "SELECT rr.referral_id::text, 'referral of ' || rr.report_id FROM referral.referral_reports rr"
            " WHERE rr.position = 0").fetchall())

    def __call__(self, value):
        if isinstance(value, str):
            return UUID_RE.sub(lambda m: m.group(0) if m.group(0) in self.known else self.names.get(m.group(0),
                                                                                                m.group(0)), value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value


def state(conn, now, outbox_after: int, known: set[str], records: list[logging.LogRecord]) -> dict:
    """Everything the decisions of a bubble changed, with the run's referral ids named."""
    name = Names(conn, known)
    # Half the spacing of bubbles: the neighbours' referrals (created at their `now`, 60 days
    # away) and slots stay out, whichever test ran in them before.
    window = (now - BUBBLE_SPACING / 2, now + BUBBLE_SPACING / 2)
    referrals = conn.execute(
        "SELECT referral_id::text, patient_mrn, patient_mrn_key, patient_birth_date, possible_duplicate_of::text,"
        " possible_duplicate_mrn, patient_display_name, priority, status, slot_id::text, created_at,"
        " window_ends_at, version, updated_at, contact_needed FROM referral.referrals"
        " WHERE created_at BETWEEN %s AND %s ORDER BY 1", window).fetchall()
    ids = [r[0] for r in referrals]
    reports = conn.execute(
        "SELECT report_id::text, referral_id::text, position, care_level, linked_at FROM referral.referral_reports"
        " WHERE referral_id = ANY(%s::uuid[]) ORDER BY 1", (ids,)).fetchall()
    history = conn.execute(
        "SELECT referral_id::text, sequence, at, actor, action, from_status, to_status, reason,"
        " from_slot_id::text, to_slot_id::text FROM referral.referral_history"
        " WHERE referral_id = ANY(%s::uuid[])", (ids,)).fetchall()
    outbox = conn.execute(
        "SELECT topic, key, traceparent, payload - 'id' - 'time' FROM referral.outbox WHERE id > %s ORDER BY id",
        (outbox_after,)).fetchall()
    slots = conn.execute("SELECT slot_id::text, booked FROM referral.slots WHERE start_at BETWEEN %s AND %s"
                         " ORDER BY 1", window).fetchall()
    logged = [(r.referral_id, r.event_type, r.sequence, r.status) for r in records
              if r.getMessage() == "referral changed"]
    return {"referrals": sorted(name(list(r)) for r in referrals), "reports": sorted(name(list(r)) for r in reports),
            "history": sorted(name(list(h)) for h in history), "outbox": name([list(o) for o in outbox]),
            "slots": slots, "logged": name(logged)}


class OrderedIds:
    """uuid.uuid4 made to count, from the same start in each run: the referral ids a run makes
    then sort in the order they are made, in both runs. (The policy breaks ties between
    referrals created at the same time by id: with random ids, two runs of the same
    decisions could name different referrals as the one a possible duplicate is flagged
    against.)"""

    def __init__(self):
        self.prefix = random.getrandbits(64) << 64
        self.count = 0

    def reset(self) -> None:
        self.count = 0

    def __call__(self) -> uuid.UUID:
        self.count += 1
        return uuid.UUID(int=self.prefix | self.count)

    def first(self) -> str:
        return str(uuid.UUID(int=self.prefix | 1))


@pytest.fixture
def ordered_ids():
    return OrderedIds()


def compare(conn, now, setup, decisions, caplog, ids: OrderedIds) -> dict:
    """Apply `decisions` (events) one by one, then, from the same start, as one batch: the
    two states. `setup` runs first (committed to the test's bubble), outside the comparison."""
    setup()
    known = {r[0] for r in conn.execute("SELECT referral_id::text FROM referral.referrals").fetchall()}
    outbox_after = conn.execute("SELECT coalesce(max(id), 0) FROM referral.outbox").fetchone()[0]
    batch = [prepared(e) for e in decisions]
    states = {}
    for how in (one_by_one, together):
        caplog.clear()
        ids.reset()
        with caplog.at_level(logging.INFO, logger="services.referral.booking"), mock.patch.object(uuid, "uuid4", ids):
            with conn.transaction(force_rollback=True):
                how(conn, batch, now)
                states[how.__name__] = state(conn, now, outbox_after, known, caplog.records)
                for (payload,) in conn.execute("SELECT payload FROM referral.outbox WHERE id > %s",
                                               (outbox_after,)).fetchall():
                    fhir_as_the_snapshot_says(payload)  # issue 17, in both runs (and equal: the state)
    assert states["together"] == states["one_by_one"]
    return states["together"]


def test_new_patients_are_booked_in_order_and_the_rest_waitlisted(ref_conn, now, caplog, ordered_ids):
    """Urgent windows run out before routine ones: an urgent decision that finds no slot in
    its two days leaves the next slot to a later specialist decision, as one at a time."""
    provider = new_provider(ref_conn)
    starts = [now + H, now + D, now + 3 * D, now + 5 * D, now + 13 * D, now + 20 * D]
    decisions = [decision_event(level, mrn()) for level in
                 ("urgent", "specialist", "urgent", "self_care", "urgent", "specialist", "urgent", "specialist",
                  "specialist", "specialist", "urgent")]

    result = compare(ref_conn, now, lambda: add_slots(ref_conn, provider, starts, now), decisions, caplog,
                     ordered_ids)

    statuses = sorted(r[8] for r in result["referrals"])
    assert statuses == ["booked"] * 5 + ["waitlisted"] * 5
    assert [o[3]["type"] for o in result["outbox"]] == [
        "referral.booked", "referral.booked", "referral.waitlisted", "referral.waitlisted", "referral.booked",
        "referral.waitlisted", "referral.booked", "referral.booked", "referral.waitlisted", "referral.waitlisted"]


def test_no_slots_at_all_waitlists_every_new_patient(ref_conn, now, caplog, ordered_ids):
    decisions = [decision_event(level, mrn()) for level in ("urgent", "specialist", "specialist")]
    result = compare(ref_conn, now, lambda: None, decisions, caplog, ordered_ids)
    assert [r[8] for r in result["referrals"]] == ["waitlisted"] * 3


@pytest.mark.parametrize("seed", range(8))
def test_a_mixed_run_does_what_one_decision_at_a_time_does(ref_conn, caplog, seed, ordered_ids):
    """New patients, patients met before (in the run or in the database: links, raises that
    move a booking, replayed reports), MRNs typed otherwise, other or unknown birth dates
    (possible duplicates), self care; few slots."""
    rng = random.Random(seed)
    now = next_bubble()
    provider = new_provider(ref_conn)
    starts = sorted({now + timedelta(hours=rng.randrange(1, 20 * 24)) for _ in range(rng.randrange(3, 12))})
    known_patients = [mrn() for _ in range(3)]

    def setup():
        add_slots(ref_conn, provider, starts, now)
        for patient in known_patients:  # open referrals from before the run
            decide(ref_conn, rng.choice(("specialist", "urgent")), patient, now - H)

    patients: list[str] = list(known_patients)
    reports: list[dict] = []
    decisions = []
    for _ in range(rng.randrange(8, 30)):
        kind = rng.choices(["new", "again", "typed", "other_born", "unknown_born", "replay", "self_care"],
                           [8, 4, 1, 1, 1, 1, 2])[0]
        level = rng.choice(("urgent", "specialist"))
        if kind == "new" or not patients:
            patient = mrn()
            patients.append(patient)
            event = decision_event(level, patient)
        elif kind == "again":
            event = decision_event(level, rng.choice(patients))
        elif kind == "typed":
            event = decision_event(level, f"  {rng.choice(patients).lower()} ")
        elif kind == "other_born":
            event = decision_event(level, rng.choice(patients), birth_date=OTHER_BIRTH_DATE)
        elif kind == "unknown_born":
            event = decision_event(level, rng.choice(patients), birth_date=None)
        elif kind == "replay" and reports:
            earlier = rng.choice(reports)
            event = decision_event(earlier["care_level"], earlier["patient"]["mrn"], report_id=earlier["report_id"])
        else:
            event = decision_event("self_care", mrn())
        reports.append(event["data"])
        decisions.append(event)

    compare(ref_conn, now, setup, decisions, caplog, ordered_ids)


def test_a_patient_message_naming_a_new_referral_sets_its_flag_as_one_at_a_time(ref_conn, now, caplog,
                                                                                ordered_ids):
    """Robustness (booking: never today): a message that names the id a new referral gets."""
    provider = new_provider(ref_conn)

    def setup():
        add_slots(ref_conn, provider, [now + D], now)
        ref_conn.execute(
            "INSERT INTO referral.patient_messages (message_id, referral_id, report_id, sequence, change, channel,"
            " status, attempts, revision, at) VALUES (%s, %s, NULL, 1, 'booked', 'email', 'failed', 3, 1, %s)",
            (str(uuid.UUID(int=random.getrandbits(128))), ordered_ids.first(), now))

    result = compare(ref_conn, now, setup, [decision_event("specialist", mrn())], caplog, ordered_ids)
    [referral] = result["referrals"]
    assert referral[-1] is True  # contact_needed: the message failed


# -- round trips ------------------------------------------------------------------------------
def waits(trace: str) -> int:
    """Times the client sent its queued messages, then read answers (libpq trace F..., B...)."""
    sides = [line.split("\t", 1)[0] for line in trace.splitlines() if line[:2] in ("F\t", "B\t")]
    return sum(1 for before, after in zip(sides, sides[1:]) if (before, after) == ("F", "B"))


@pytest.mark.parametrize("patients, free, expected", [(1, 1, 2), (40, 40, 2), (40, 10, 3)],
                         ids=["one", "forty booked", "forty, thirty waitlisted"])
def test_a_run_of_new_patients_waits_for_the_server_a_fixed_number_of_times(referral_settings, ref_conn, now,
                                                                            patients, free, expected):
    """The claims, then the writes; a third wait when some must look again under the
    waitlist lock."""
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + H * (k + 1) for k in range(free)], now)
    batch = [prepared(decision_event("specialist", mrn())) for _ in range(patients)]
    with psycopg.connect(referral_settings.database_url) as conn, tempfile.TemporaryFile("w+") as trace:
        conn.execute("SELECT 1").fetchone()
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            decision_batch.write(conn, batch, now=now)
        finally:
            conn.pgconn.untrace()
        conn.commit()
        trace.seek(0)
        text = trace.read()
    booked = ref_conn.execute(
        "SELECT count(*) FROM referral.referral_reports rr JOIN referral.referrals r USING (referral_id)"
        " WHERE rr.report_id = ANY(%s::uuid[]) AND r.status = 'booked'",
        ([p.decision.report_id for p in batch],)).fetchone()[0]
    assert booked == free
    assert waits(text) == expected


# -- races ------------------------------------------------------------------------------------
def _in_threads(referral_settings, batches, now) -> list[BaseException | None]:
    """Each batch written by a worker of its own (a connection, a transaction), started together."""
    barrier = threading.Barrier(len(batches))
    outcome: list[BaseException | None] = [None] * len(batches)

    def run(k):
        try:
            with psycopg.connect(referral_settings.database_url) as conn:
                barrier.wait(timeout=10)
                decision_batch.write(conn, batches[k], now=now)
                conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcome


@pytest.mark.parametrize("attempt", range(3))
def test_racing_workers_book_each_slot_once_and_leave_none_free_beside_the_waitlist(referral_settings, ref_conn,
                                                                                   attempt):
    now = next_bubble()
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + H * (k + 1) for k in range(15)] + [now + 4 * D + H * k for k in range(5)],
              now)
    batches = [[prepared(decision_event(level, mrn())) for level in ("urgent", "specialist") * 8] for _ in range(3)]

    assert _in_threads(referral_settings, batches, now) == [None, None, None]

    rows = ref_conn.execute(
        "SELECT r.status, r.window_ends_at, r.slot_id FROM referral.referrals r"
        " JOIN referral.referral_reports rr USING (referral_id) WHERE rr.report_id = ANY(%s::uuid[])",
        ([p.decision.report_id for batch in batches for p in batch],)).fetchall()
    assert len(rows) == 48
    assert sum(1 for status, _end, _slot in rows if status == "booked") == 20
    waitlisted_ends = [end for status, end, _slot in rows if status == "waitlisted"]
    free = ref_conn.execute("SELECT start_at FROM referral.slots WHERE NOT booked AND start_at BETWEEN %s AND %s",
                            (now, now + 30 * D)).fetchall()
    assert [start for (start,) in free if any(start <= end for end in waitlisted_ends)] == []


def test_two_workers_with_one_new_patient_end_in_one_referral_after_the_retry(referral_settings, ref_conn, now):
    """Both see a new patient; the index of open referrals refuses the second insert, whose
    transaction is void (the inbox then applies its events one by one: the retry links)."""
    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + H, now + 2 * H], now)
    patient = mrn()
    first, second = decision_event("specialist", patient), decision_event("urgent", patient)
    with psycopg.connect(referral_settings.database_url) as holder:
        decision_batch.write(holder, [prepared(first)], now=now)  # not committed yet
        outcome: list[BaseException] = []
        done = threading.Event()

        def rival():
            try:
                with psycopg.connect(referral_settings.database_url) as conn:
                    decision_batch.write(conn, [prepared(second)], now=now)
                    conn.commit()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                outcome.append(exc)
            done.set()

        thread = threading.Thread(target=rival)
        thread.start()
        assert not done.wait(1.0)  # waits for the holder's insert on the unique index
        holder.commit()
        thread.join(timeout=30)
    assert [type(exc) for exc in outcome] == [errors.UniqueViolation]

    with psycopg.connect(referral_settings.database_url) as conn:  # the retry, as the inbox makes it
        decision_batch.write(conn, [prepared(second)], now=now)
        conn.commit()
    [(status, priority, report_count)] = ref_conn.execute(
        "SELECT r.status, r.priority, (SELECT count(*) FROM referral.referral_reports x"
        "  WHERE x.referral_id = r.referral_id) FROM referral.referrals r WHERE r.patient_mrn = %s",
        (patient,)).fetchall()
    assert (status, priority, report_count) == ("booked", "urgent", 2)
