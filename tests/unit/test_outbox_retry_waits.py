"""The relay's waits while the database or the broker is away double up to RETRY_MAX_S, and
start again from RETRY_FIRST_S once it has worked: a second outage an hour later is not met
with the longest wait the first one reached. (Connections are stand-ins: each round either
fails to connect or connects, publishes an empty batch and then loses its connection; the
waits are read from the stop event the relay waits on.)"""
from __future__ import annotations

import contextlib
import threading

from services.common import outbox
from services.common.outbox import RETRY_FIRST_S, RETRY_MAX_S, OutboxRelay


class RecordingStop(threading.Event):
    def __init__(self, rounds: int):
        super().__init__()
        self.rounds = rounds
        self.waits: list[float] = []

    def wait(self, timeout=None):
        self.waits.append(timeout)
        if len(self.waits) >= self.rounds:
            self.set()
        return self.is_set()


class DroppingConnection:
    """Takes LISTEN, then drops while the relay waits for a notification."""

    def execute(self, *_args, **_kwargs):
        return None

    def notifies(self, **_kwargs):
        raise OSError("server closed the connection unexpectedly")


def relay_whose_rounds_go(monkeypatch, outcomes: list[str]) -> OutboxRelay:
    """Each round of the relay: "down" (the database refuses) or "worked" (it connects and
    publishes a batch before the connection drops)."""
    rounds = iter(outcomes)
    next_is_listener = True

    def connect(_url, autocommit=False):
        # A round opens the listener, then the publishing connection: the listener's decides.
        nonlocal next_is_listener
        if next_is_listener and next(rounds) == "down":
            raise OSError("connection refused")
        next_is_listener = not next_is_listener
        return contextlib.nullcontext(DroppingConnection())

    monkeypatch.setattr(outbox, "connect", connect)
    monkeypatch.setattr(outbox, "purge_sent", lambda conn, schema: 0)
    relay = OutboxRelay("postgresql://unused", "intake", "127.0.0.1:9", "test-relay")
    monkeypatch.setattr(relay, "publish_batch", lambda conn: 0)
    return relay


def test_waits_double_up_to_the_ceiling_while_away(monkeypatch):
    stop = RecordingStop(rounds=6)
    relay_whose_rounds_go(monkeypatch, ["down"] * 6).run(stop)
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, RETRY_MAX_S, RETRY_MAX_S]


def test_a_working_spell_starts_the_next_outage_from_the_shortest_wait(monkeypatch):
    stop = RecordingStop(rounds=7)
    relay_whose_rounds_go(monkeypatch, ["down"] * 5 + ["worked", "down"]).run(stop)
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, RETRY_MAX_S, RETRY_FIRST_S, 1.0]
