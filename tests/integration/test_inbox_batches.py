"""A poll's events applied in one transaction (services/common/inbox.py): whole when every
event goes through (_apply_whole: no savepoints, BatchHandlers writing runs together), else
each under a savepoint (_apply_each), on the real broker and database: poison in the middle
of a batch, a crash between the database commit and the offset commit, the database lost
mid-batch, a handler error mid-batch, batch handlers and duplicates.

The consumer is InboxConsumer alone (no relay), as the triage principal, in a group of its
own that starts at the topic's end, with handlers that record each call and write one row per
applied event into a table of the test's: "applied once" is counted in the database."""
from __future__ import annotations

import logging
import threading
import uuid

import psycopg
import pytest
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition

from tests.kafka_support import read_topic
from tests.triage_support import produce

from services.common import envelope
from services.common.db import make_pool
from services.common.inbox import MAX_ATTEMPTS, BatchHandler, InboxConsumer, PoisonEvent
from services.common.kafka_io import client_security
from services.common.settings import TOPIC_REPORTS, dlq_topic

pytestmark = pytest.mark.integration

EFFECTS = "triage.test_inbox_batch_effects"


class SimulatedCrash(BaseException):
    """Like SIGKILL for the consumer loop: nothing after it runs."""


@pytest.fixture(scope="module")
def effects_table(triage_settings):
    with psycopg.connect(triage_settings.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {EFFECTS} (event_id text NOT NULL, kind text NOT NULL, txid bigint NOT NULL)")
    yield EFFECTS
    with psycopg.connect(triage_settings.database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {EFFECTS}")


def _event(kind: str) -> dict:
    return envelope.new_event(type="batch.test", source="/batch-test", subject=kind, data={"kind": kind})


class Recorder:
    """The handler: records each call; writes one effect row per applied event; `poison`
    kinds are refused as PoisonEvent, `broken` kinds fail like a bug, and `on_call` may act
    (kill the connection, crash) before the row is written."""

    def __init__(self, on_call=None):
        self.calls: list[str] = []
        self.offsets: dict[str, tuple[int, int]] = {}
        self.on_call = on_call

    def __call__(self, conn, event, delivery):
        kind = event["data"]["kind"]
        self.calls.append(kind)
        self.offsets[kind] = (delivery.partition, delivery.offset)
        if self.on_call is not None:
            self.on_call(conn, kind)
        if kind.startswith("poison"):
            raise PoisonEvent("batch test event data invalid: kind: poison on purpose")
        if kind.startswith("broken"):
            raise RuntimeError("a bug in the handler")
        conn.execute(f"INSERT INTO {EFFECTS} VALUES (%s, %s, txid_current())", (event["id"], kind))


def _group() -> str:
    return f"clinic-triage-batch-{uuid.uuid4().hex[:8]}"  # under triage's group prefix


def _start_at_end(settings, group: str) -> None:
    """The group's offsets at the topic's end now: it reads only this test's messages."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False,
                             **client_security(settings))
    try:
        partitions = [TopicPartition(TOPIC_REPORTS, p) for p in sorted(consumer.partitions_for_topic(TOPIC_REPORTS))]
        consumer.assign(partitions)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in consumer.end_offsets(partitions).items()})
    finally:
        consumer.close(autocommit=False)


def _committed(settings, group: str, partition: int) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False,
                             **client_security(settings))
    try:
        return consumer.committed(TopicPartition(TOPIC_REPORTS, partition))
    finally:
        consumer.close(autocommit=False)


def _run(settings, group: str, handler, stop_when) -> dict:
    """Run the consumer in a thread until stop_when() or it crashes: {"crashed": True} if it did,
    "checkouts": how many connections it took from its pool."""
    pool = make_pool(settings.database_url, max_size=2, name="inbox-batch-test")
    consumer = InboxConsumer(service="triage", pool=pool, kafka_bootstrap=settings.kafka_bootstrap,
                             group_id=group, handlers={TOPIC_REPORTS: handler},
                             kafka_security=client_security(settings))
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
        waited = 0.0
        while thread.is_alive() and not stop_when():
            assert waited < 90, "the consumer did not get through its messages within 90 s"
            thread.join(timeout=0.2)
            waited += 0.2
    finally:
        stop.set()
        thread.join(timeout=30)
        outcome["checkouts"] = pool.get_stats().get("requests_num", 0)
        pool.close()
    return outcome


def _effects(conn, events: list[dict]) -> dict[str, list[int]]:
    """kind -> the transaction ids of its effect rows (one per application)."""
    rows = conn.execute(f"SELECT kind, txid FROM {EFFECTS} WHERE event_id = ANY(%s) ORDER BY kind",
                        ([e["id"] for e in events],)).fetchall()
    found: dict[str, list[int]] = {}
    for kind, txid in rows:
        found.setdefault(kind, []).append(txid)
    return found


def _inbox(conn, events: list[dict]) -> set[str]:
    return {r[0] for r in conn.execute("SELECT event_id FROM triage.inbox WHERE event_id = ANY(%s)",
                                       ([e["id"] for e in events],))}


def _parked(settings, key: str, group: str) -> list:
    return [m for m in read_topic(settings.kafka_bootstrap, dlq_topic(TOPIC_REPORTS), {key})
            if dict(m.headers).get("dlq.consumer_group") == group.encode()]


def test_poison_mid_batch_is_parked_once_and_the_rest_commit_together(triage_settings, triage_conn,
                                                                      effects_table):
    key, group = f"batch-poison-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "b", "poison", "c", "d")}
    _start_at_end(triage_settings, group)
    # One key, one partition, in this order; and a message that is not even JSON after the poison.
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS,
            [(key, envelope.encode(events[k])) for k in ("a", "b", "poison")] + [(key, b"{not json")]
            + [(key, envelope.encode(events[k])) for k in ("c", "d")])
    recorder = Recorder()
    partition = {}

    def all_committed():
        if "d" not in recorder.offsets:
            return False
        partition["p"], last = recorder.offsets["d"]
        return _committed(triage_settings, group, partition["p"]) == last + 1

    _run(triage_settings, group, recorder, stop_when=all_committed)

    effects = _effects(triage_conn, list(events.values()))
    assert sorted(effects) == ["a", "b", "c", "d"]
    assert all(len(txids) == 1 for txids in effects.values()), "each applied once"
    assert len({txids[0] for txids in effects.values()}) == 1, "one poll, one transaction"
    assert _inbox(triage_conn, list(events.values())) == {events[k]["id"] for k in ("a", "b", "c", "d")}
    assert recorder.calls == ["a", "b", "poison", "c", "d"]

    parked = _parked(triage_settings, key, group)
    assert [m.value for m in parked] == [envelope.encode(events["poison"]), b"{not json"], "each parked once"
    headers = dict(parked[0].headers)
    assert headers["dlq.error_type"] == b"PoisonEvent"
    assert headers["dlq.error"] == b"batch test event data invalid: kind: poison on purpose"
    assert dict(parked[1].headers)["dlq.error"].startswith(b"not JSON")


def test_a_crash_between_the_database_commit_and_the_offset_commit_applies_nothing_twice(
        triage_settings, triage_conn, effects_table, monkeypatch, caplog):
    key, group = f"batch-crash-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "b", "poison", "c")}
    _start_at_end(triage_settings, group)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(e)) for e in events.values()])

    real_commit = InboxConsumer._commit
    crash = {"armed": True}

    def dying_commit(self, next_offsets):
        if crash["armed"]:
            crash["armed"] = False
            raise SimulatedCrash()  # the database has committed the batch; Kafka never hears of it
        real_commit(self, next_offsets)

    monkeypatch.setattr(InboxConsumer, "_commit", dying_commit)
    first = Recorder()
    assert _run(triage_settings, group, first, stop_when=lambda: False).get("crashed") is True
    # Tried whole first (the poison rolls that back), then event by event.
    assert first.calls == ["a", "b", "poison", "a", "b", "poison", "c"]
    partition, last = first.offsets["c"]
    assert _committed(triage_settings, group, partition) != last + 1

    # Redelivered from the last committed offset: every applied event is a duplicate; the
    # poison (no inbox row, so that `clinic dlq replay` can apply it once fixed) is refused
    # again and recognised as parked; the offsets move past them all.
    again = Recorder()
    with caplog.at_level(logging.INFO, logger="services.common.inbox"):
        _run(triage_settings, group, again,
             stop_when=lambda: _committed(triage_settings, group, partition) == last + 1)
    assert again.calls == ["poison", "poison"]  # whole (a, b, c are not new), then alone
    effects = _effects(triage_conn, list(events.values()))
    assert sorted(effects) == ["a", "b", "c"] and all(len(t) == 1 for t in effects.values())
    assert [m.value for m in _parked(triage_settings, key, group)] == [envelope.encode(events["poison"])]
    assert any(r.getMessage() == "message already dead-lettered" for r in caplog.records)


def test_the_database_lost_mid_batch_leaves_nothing_half_applied(triage_settings, triage_conn, effects_table,
                                                                 admin_conn, caplog):
    key, group = f"batch-dbdown-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "b", "c", "d")}
    _start_at_end(triage_settings, group)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(e)) for e in events.values()])
    kill = {"armed": True}

    def lose_the_database_at_c(conn, kind):
        if kind == "c" and kill["armed"]:
            kill["armed"] = False
            # Applied so far in this batch: a and b, not committed; then the server ends the session.
            admin_conn.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))

    recorder = Recorder(on_call=lose_the_database_at_c)
    with caplog.at_level(logging.WARNING, logger="services.common.inbox"):
        _run(triage_settings, group, recorder,
             stop_when=lambda: sorted(_effects(triage_conn, list(events.values()))) == ["a", "b", "c", "d"])

    assert any(r.getMessage() == "database unavailable; pausing partition" for r in caplog.records)
    # a and b came again (their batch was rolled back, so they were not duplicates), then all of it.
    assert recorder.calls == ["a", "b", "c", "a", "b", "c", "d"]
    effects = _effects(triage_conn, list(events.values()))
    assert all(len(t) == 1 for t in effects.values()), "each applied once"
    assert _inbox(triage_conn, list(events.values())) == {e["id"] for e in events.values()}


def test_a_handler_error_mid_batch_commits_the_events_before_it_and_retries_it_alone(
        triage_settings, triage_conn, effects_table):
    key, group = f"batch-broken-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "broken", "b")}
    _start_at_end(triage_settings, group)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(e)) for e in events.values()])
    recorder = Recorder()

    def all_committed():
        if "b" not in recorder.offsets:
            return False
        partition, last = recorder.offsets["b"]
        return _committed(triage_settings, group, partition) == last + 1

    _run(triage_settings, group, recorder, stop_when=all_committed)

    # The batch tried whole (rolled back at "broken"), then event by event: "broken" fails
    # MAX_ATTEMPTS times there (in the batch, then alone) and is parked; a and b applied once.
    assert recorder.calls == ["a", "broken", "a"] + ["broken"] * MAX_ATTEMPTS + ["b"]
    effects = _effects(triage_conn, list(events.values()))
    assert sorted(effects) == ["a", "b"] and all(len(t) == 1 for t in effects.values())
    parked = _parked(triage_settings, key, group)
    assert [m.value for m in parked] == [envelope.encode(events["broken"])]
    assert dict(parked[0].headers)["dlq.error_type"] == b"RuntimeError"
    assert events["broken"]["id"] not in _inbox(triage_conn, list(events.values()))


def test_a_stop_right_after_a_batch_leaves_its_offsets_committed(triage_settings, triage_conn, effects_table):
    """Offsets are committed without waiting for the broker's answer (issue 15); a consumer
    that stops waits for the last of them, so a clean stop leaves nothing to redeliver."""
    key, group = f"batch-stop-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "b")}
    _start_at_end(triage_settings, group)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(e)) for e in events.values()])
    recorder = Recorder()
    _run(triage_settings, group, recorder,
         stop_when=lambda: sorted(_effects(triage_conn, list(events.values()))) == ["a", "b"])
    partition, last = recorder.offsets["b"]
    assert _committed(triage_settings, group, partition) == last + 1


class BatchRecorder:
    """A BatchHandler's two steps: prepare records the kind (refusing `poison` kinds as
    PoisonEvent), write records each list it is given and writes one effect row per event."""

    def __init__(self):
        self.prepared: list[str] = []
        self.writes: list[list[str]] = []
        self.offsets: dict[str, tuple[int, int]] = {}

    def prepare(self, event, delivery):
        kind = event["data"]["kind"]
        self.prepared.append(kind)
        self.offsets[kind] = (delivery.partition, delivery.offset)
        if kind.startswith("poison"):
            raise PoisonEvent("batch test event data invalid: kind: poison on purpose")
        return event["id"], kind

    def write(self, conn, prepared):
        self.writes.append([kind for _id, kind in prepared])
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {EFFECTS} VALUES (%s, %s, txid_current())", prepared)

    def handler(self) -> BatchHandler:
        return BatchHandler(prepare=self.prepare, write=self.write)


def _committed_past(settings, group: str, recorder, kind: str):
    def check():
        if kind not in recorder.offsets:
            return False
        partition, last = recorder.offsets[kind]
        return _committed(settings, group, partition) == last + 1
    return check


def test_a_clean_batch_is_applied_whole_its_new_events_written_in_one_call(triage_settings, triage_conn,
                                                                             effects_table):
    key, group = f"batch-whole-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "b", "c", "d")}
    _start_at_end(triage_settings, group)
    # c was applied before (its inbox row is there: a redelivery); b comes twice in the batch.
    with triage_conn.transaction():
        triage_conn.execute("INSERT INTO triage.inbox (event_id, topic, event_type) VALUES (%s, %s, %s)",
                            (events["c"]["id"], TOPIC_REPORTS, "batch.test"))
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS,
            [(key, envelope.encode(events[k])) for k in ("a", "b", "b", "c", "d")])
    recorder = BatchRecorder()
    _run(triage_settings, group, recorder.handler(), stop_when=_committed_past(triage_settings, group, recorder, "d"))

    assert recorder.writes == [["a", "b", "d"]], "one write, the new events once each, in order"
    effects = _effects(triage_conn, list(events.values()))
    assert sorted(effects) == ["a", "b", "d"] and all(len(t) == 1 for t in effects.values())
    assert len({txids[0] for txids in effects.values()}) == 1, "one transaction"
    assert _inbox(triage_conn, list(events.values())) == {e["id"] for e in events.values()}


def test_poison_from_a_batch_handler_is_parked_and_the_others_are_applied_once(triage_settings, triage_conn,
                                                                               effects_table):
    key, group = f"batch-prepare-{uuid.uuid4()}", _group()
    events = {kind: _event(kind) for kind in ("a", "poison", "b")}
    _start_at_end(triage_settings, group)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(e)) for e in events.values()])
    recorder = BatchRecorder()
    _run(triage_settings, group, recorder.handler(), stop_when=_committed_past(triage_settings, group, recorder, "b"))

    # Nothing written whole (the poison was found before the transaction), then one by one.
    assert recorder.writes == [["a"], ["b"]]
    effects = _effects(triage_conn, list(events.values()))
    assert sorted(effects) == ["a", "b"] and all(len(t) == 1 for t in effects.values())
    assert [m.value for m in _parked(triage_settings, key, group)] == [envelope.encode(events["poison"])]
    assert events["poison"]["id"] not in _inbox(triage_conn, list(events.values()))


def test_the_batches_keep_their_connection_from_poll_to_poll(triage_settings, triage_conn, effects_table):
    """No pool checkout per poll (each cost the pool's check, a round trip, on every hop of an
    event's path): two polls' batches, one checkout."""
    key, group = f"batch-session-{uuid.uuid4()}", _group()
    first, second = _event("first"), _event("second")
    _start_at_end(triage_settings, group)
    produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(first))])
    sessions: dict[str, int] = {}
    recorder = Recorder(on_call=lambda conn, kind: sessions.setdefault(kind, conn.info.backend_pid))

    def second_after_first() -> bool:
        applied = _effects(triage_conn, [first, second])
        if "first" in applied and "second" not in recorder.calls and "sent" not in sessions:
            sessions["sent"] = 1  # the second event comes after the first one's batch: another poll
            produce(triage_settings.kafka_bootstrap, TOPIC_REPORTS, [(key, envelope.encode(second))])
        return sorted(applied) == ["first", "second"]

    outcome = _run(triage_settings, group, recorder, stop_when=second_after_first)

    assert recorder.calls == ["first", "second"]
    assert sessions["first"] == sessions["second"]
    assert outcome["checkouts"] == 1
