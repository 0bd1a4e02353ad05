"""The lock order of booking.py, checked on the real database: a transaction that may have
to wait for the waitlist lock holds no referral or slot lock that a waitlist holder could
want meanwhile, and a scheduler never waits for a slot a worker may hold while it waits for
the waitlist. Out of order, schedulers' commands, slot offers and workers deadlocked each
other (a clean-clone CI run answered a reschedule with 503 busy after three lost deadlocks).

Most tests hold the waitlist lock in a transaction of their own, let the command under test
run into it, and then take the row the command must not hold yet with NOWAIT."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest

from tests.referral_support import TRACEPARENT, add_slots, decide, mrn, new_provider, referral_for_report

from services.referral import booking, store
from services.referral.domain import SLOT_TAKEN, TransitionError

pytestmark = pytest.mark.integration

H = timedelta(hours=1)
D = timedelta(days=1)
WAIT_TIMEOUT_S = 10.0


class CommandInThread:
    """Run `command(conn)` on a connection of its own, committed, in a thread."""

    def __init__(self, database_url: str, command):
        self._database_url, self._command = database_url, command
        self.backend_pid: int | None = None
        self.error: BaseException | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="command-under-test")

    def _run(self) -> None:
        try:
            with psycopg.connect(self._database_url, autocommit=True) as conn:
                self.backend_pid = conn.info.backend_pid
                self._connected.set()
                with conn.transaction():
                    self._command(conn)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            self._connected.set()

    def start(self) -> CommandInThread:
        self._thread.start()
        assert self._connected.wait(WAIT_TIMEOUT_S)
        return self

    def join(self) -> None:
        self._thread.join(WAIT_TIMEOUT_S)
        assert not self._thread.is_alive(), f"the command did not finish within {WAIT_TIMEOUT_S:g} s"
        if self.error is not None:
            raise self.error


def wait_until_waiting_for_the_waitlist(conn: psycopg.Connection, command: CommandInThread) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        assert command.error is None, command.error
        waiting = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
            (command.backend_pid,)).fetchone()[0]
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError("the command never waited for the waitlist lock")


def free_now(conn: psycopg.Connection, table: str, key: str, value: str) -> bool:
    """Whether this other transaction can lock the row at once (NOWAIT); rolled back."""
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"SELECT 1 FROM referral.{table} WHERE {key} = %s FOR UPDATE NOWAIT", (value,))
        return True
    except psycopg.errors.LockNotAvailable:
        return False


def holding_the_waitlist(database_url: str):
    conn = psycopg.connect(database_url)  # a transaction, open until commit
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (store.WAITLIST_LOCK_KEY,))
    return conn


@pytest.mark.parametrize("command_name", ["cancel", "reschedule"])
def test_a_schedulers_command_waits_for_the_waitlist_before_locking_the_referral(
        referral_settings, ref_conn, now, command_name):
    provider = new_provider(ref_conn)
    booked_slot, free_slot = add_slots(ref_conn, provider, [now + 2 * D, now + 3 * D], now)
    report_id = decide(ref_conn, "specialist", mrn(), now)
    referral_id = referral_for_report(ref_conn, report_id)["referral_id"]
    commands = {
        "cancel": lambda conn: booking.cancel(conn, referral_id, "patient moved away", actor="scheduler-test",
                                              now=now, traceparent=TRACEPARENT),
        "reschedule": lambda conn: booking.reschedule(conn, referral_id, free_slot, actor="scheduler-test",
                                                      now=now, traceparent=TRACEPARENT),
    }

    holder = holding_the_waitlist(referral_settings.database_url)
    try:
        command = CommandInThread(referral_settings.database_url, commands[command_name]).start()
        wait_until_waiting_for_the_waitlist(ref_conn, command)
        assert free_now(ref_conn, "referrals", "referral_id", referral_id)
        assert free_now(ref_conn, "slots", "slot_id", booked_slot)
    finally:
        holder.commit()
        holder.close()
    command.join()

    expected = {"cancel": ("cancelled", None), "reschedule": ("booked", free_slot)}[command_name]
    referral = referral_for_report(ref_conn, report_id)
    assert (referral["status"], referral["slot_id"]) == expected


def test_a_worker_moving_a_booked_referral_waits_for_the_waitlist_before_claiming_the_new_slot(
        referral_settings, ref_conn, now):
    """An urgent report raises a routine referral booked after the urgent window: the move
    frees its slot for the waitlist, so the worker takes the waitlist lock before it claims
    the slot inside the window."""
    provider = new_provider(ref_conn)
    patient = mrn()
    far = add_slots(ref_conn, provider, [now + 10 * D], now)[0]
    first = decide(ref_conn, "specialist", patient, now)
    assert referral_for_report(ref_conn, first)["slot_id"] == far
    soon = add_slots(ref_conn, provider, [now + D + 2 * H], now)[0]
    raised_at = now + D

    holder = holding_the_waitlist(referral_settings.database_url)
    try:
        command = CommandInThread(referral_settings.database_url,
                                  lambda conn: decide(conn, "urgent", patient, raised_at)).start()
        wait_until_waiting_for_the_waitlist(ref_conn, command)
        assert free_now(ref_conn, "slots", "slot_id", soon)
    finally:
        holder.commit()
        holder.close()
    command.join()

    assert referral_for_report(ref_conn, first)["slot_id"] == soon


def test_a_reschedule_into_a_slot_someone_is_booking_is_refused_at_once(referral_settings, ref_conn, now):
    """A worker holds slots it claimed while it may wait for the waitlist lock, which the
    scheduler's command holds: waiting for such a slot would close a circle."""
    provider = new_provider(ref_conn)
    booked_slot, contested = add_slots(ref_conn, provider, [now + 2 * D, now + 3 * D], now)
    report_id = decide(ref_conn, "specialist", mrn(), now)
    referral_id = referral_for_report(ref_conn, report_id)["referral_id"]

    claimer = psycopg.connect(referral_settings.database_url)  # a worker's claim, not committed yet
    claimer.execute("SELECT 1 FROM referral.slots WHERE slot_id = %s FOR UPDATE", (contested,))
    try:
        command = CommandInThread(
            referral_settings.database_url,
            lambda conn: booking.reschedule(conn, referral_id, contested, actor="scheduler-test", now=now,
                                            traceparent=TRACEPARENT)).start()
        with pytest.raises(TransitionError) as refused:
            command.join()
    finally:
        claimer.rollback()
        claimer.close()

    assert refused.value.code == SLOT_TAKEN
    referral = referral_for_report(ref_conn, report_id)
    assert (referral["status"], referral["slot_id"]) == ("booked", booked_slot)
