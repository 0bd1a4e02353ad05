"""A poison message is dead-lettered once per consumer group, even when a crash makes the
broker deliver it again (services/common/inbox.py: the dead-letter marker in the inbox).

The consumer commits offsets after a whole batch, so a worker that dies after parking a
message but before that commit gets the message again on restart; without the marker it
would park it a second time."""
from __future__ import annotations

import logging
import threading
import uuid

import pytest

from tests.kafka_support import read_topic
from tests.triage_support import produce

from services.common import envelope
from services.common.db import make_pool
from services.common.inbox import InboxConsumer
from services.common.kafka_io import client_security
from services.common.settings import TOPIC_REPORTS, dlq_topic

pytestmark = pytest.mark.integration


class SimulatedCrash(BaseException):
    """Like SIGKILL for the consumer loop: nothing after it runs (no offset commit)."""


def _event(kind: str) -> dict:
    return envelope.new_event(type="chaos.test", source="/chaos", subject=kind, data={"kind": kind})


def _run(settings, group_id: str, handler, stop_when) -> InboxConsumer:
    # The inbox consumer alone, not run_worker: the test kills the consumer loop itself (a
    # BaseException, no offset commit) and needs no outbox relay.
    pool = make_pool(settings.database_url, max_size=2, name="dlq-once-test")
    consumer = InboxConsumer(service="triage", pool=pool, kafka_bootstrap=settings.kafka_bootstrap,
                             group_id=group_id, handlers={TOPIC_REPORTS: handler},
                             kafka_security=client_security(settings))  # as the triage principal
    stop = threading.Event()
    outcome = {}

    def target():
        try:
            consumer.run(stop)
        except SimulatedCrash:
            outcome["crashed"] = True

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        deadline = 60
        while thread.is_alive() and not stop_when() and deadline > 0:
            thread.join(timeout=0.5)
            deadline -= 0.5
        assert deadline > 0, "the consumer did not get through its messages within 60 s"
    finally:
        stop.set()
        thread.join(timeout=30)
        pool.close()
    return outcome


def test_a_redelivered_poison_message_is_not_dead_lettered_twice(triage_settings, caplog):
    key = f"dlq-once-{uuid.uuid4()}"
    group = f"clinic-triage-dlq-once-{uuid.uuid4().hex[:8]}"  # under triage's group prefix
    applied: list[str] = []
    crash = {"armed": True}

    def handler(conn, event, delivery):
        kind = event["data"]["kind"]
        if kind == "crash" and crash["armed"]:
            raise SimulatedCrash()
        applied.append(kind)

    # One key, one partition, in this order: poison, a good event, the one that "kills" us.
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [
        (key, b"{not json"),
        (key, envelope.encode(_event("good"))),
        (key, envelope.encode(_event("crash"))),
    ])

    first = _run(triage_settings, group, handler, stop_when=lambda: False)
    assert first == {"crashed": True}
    assert applied == ["good"]

    crash["armed"] = False
    with caplog.at_level(logging.INFO, logger="services.common.inbox"):
        _run(triage_settings, group, handler, stop_when=lambda: "crash" in applied)
    assert applied == ["good", "crash"]  # the good event came again: a duplicate, skipped

    parked = [m for m in read_topic(triage_settings.kafka_bootstrap, dlq_topic(TOPIC_REPORTS), {key})
              if dict(m.headers).get("dlq.consumer_group") == group.encode()]
    assert [m.value for m in parked] == [b"{not json"], "dead-lettered exactly once"
    headers = dict(parked[0].headers)
    assert headers["dlq.error_type"] == b"InvalidEvent"
    assert headers["dlq.error"].startswith(b"not JSON")
    # The poison did come again (the batch was replayed), and was recognised.
    assert any(r.getMessage() == "message already dead-lettered" for r in caplog.records)


@pytest.mark.parametrize("when", ["before_the_send", "after_the_broker_ack"])
def test_a_dead_letter_interrupted_half_way_is_neither_lost_nor_doubled(triage_settings, caplog, monkeypatch,
                                                                        when):
    """The worker dies while parking: before sending, or after the broker's ack but before
    its database commit. The next delivery finds the unfinished attempt, looks in the .dlq
    topic for its dead letter, and sends one only if it is not there."""
    key = f"dlq-half-{uuid.uuid4()}"
    group = f"clinic-triage-dlq-half-{uuid.uuid4().hex[:8]}"
    applied: list[str] = []
    real_send = InboxConsumer._send_dead_letter
    crash = {"armed": True}

    def dying_send(self, message, error, marker):
        if crash["armed"]:
            crash["armed"] = False
            if when == "after_the_broker_ack":
                real_send(self, message, error, marker)
            raise SimulatedCrash()
        real_send(self, message, error, marker)

    monkeypatch.setattr(InboxConsumer, "_send_dead_letter", dying_send)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [
        (key, b"{not json"),
        (key, envelope.encode(_event("good"))),
    ])

    assert _run(triage_settings, group, lambda c, e, d: applied.append(e["data"]["kind"]),
                stop_when=lambda: False) == {"crashed": True}
    assert applied == []
    with caplog.at_level(logging.INFO, logger="services.common.inbox"):
        _run(triage_settings, group, lambda c, e, d: applied.append(e["data"]["kind"]),
             stop_when=lambda: "good" in applied)
    assert applied == ["good"]

    parked = [m for m in read_topic(triage_settings.kafka_bootstrap, dlq_topic(TOPIC_REPORTS), {key})
              if dict(m.headers).get("dlq.consumer_group") == group.encode()]
    assert [m.value for m in parked] == [b"{not json"], "dead-lettered exactly once"
    found = any(r.getMessage() == "dead letter of an interrupted attempt found; not sending it again"
                for r in caplog.records)
    assert found == (when == "after_the_broker_ack")
