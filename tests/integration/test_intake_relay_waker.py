"""services/intake/api/relay_waker.py against the real database: every wake() is followed by a
NOTIFY on intake's outbox channel, sent by the waker's own thread and connection; a database that
cannot be reached is the waker thread's failure, logged, not the caller's."""
from __future__ import annotations

import threading
import time

import pytest

from tests.app_support import role_conn

from services.common import outbox
from services.intake.api.relay_waker import RelayWaker

pytestmark = pytest.mark.integration

CHANNEL = outbox.outbox_channel("intake")


def test_a_wake_is_followed_by_a_notify_from_the_wakers_own_connection(intake_settings):
    waker = RelayWaker(intake_settings.database_url)
    with role_conn(intake_settings) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        waker.wake()
        woken = list(listener.notifies(timeout=5, stop_after=1))
        assert [n.channel for n in woken] == [CHANNEL]
        assert woken[0].pid != listener.info.backend_pid


def test_after_a_burst_of_wakes_the_next_wake_is_still_announced(intake_settings):
    waker = RelayWaker(intake_settings.database_url)
    with role_conn(intake_settings) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        for _ in range(200):
            waker.wake()
        burst = list(listener.notifies(timeout=2))  # until none has come for 2 s
        waker.wake()
        after = list(listener.notifies(timeout=5, stop_after=1))
    assert 1 <= len(burst) <= 200  # folded: never more than one per wake
    assert [n.channel for n in after] == [CHANNEL]


def test_an_unreachable_database_is_logged_and_the_waker_goes_on(intake_settings, caplog):
    from infra.postgres import free_port

    waker = RelayWaker(f"postgresql://nobody@127.0.0.1:{free_port()}/clinic")
    waker.wake()  # does not raise: the failure is the waker thread's
    deadline = time.monotonic() + 10
    while not any(r.getMessage() == "outbox relay not woken" for r in caplog.records):
        assert time.monotonic() < deadline, "the failure was not logged"
        time.sleep(0.05)
    waker.wake()
    assert any(t.name == "relay-waker" and t.is_alive() for t in threading.enumerate())
