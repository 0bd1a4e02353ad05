"""OutboxRelay.publish_batch against a real PostgreSQL, with a stand-in producer: rows are
marked sent only once every send is acknowledged; a failed send leaves the whole batch
unsent and the connection usable (its transaction rolled back); only the marking
transaction commits without waiting for its WAL flush (a lost mark re-publishes, which
consumers skip by event id), never the session's other transactions.

The rows live in a schema of this module's own (relay_batch_test.outbox, shaped like every
service's outbox), so that no other test's relay can see them, nor they any other test's."""
from __future__ import annotations

import contextlib
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from services.common.db import apply_migrations
from services.common.outbox import BATCH_SIZE, OutboxRelay, unsent_count

pytestmark = pytest.mark.integration

SCHEMA = "relay_batch_test"


class Acked:
    def __init__(self, error: Exception | None = None):
        self.error = error

    def get(self, timeout=None):
        if self.error is not None:
            raise self.error
        return None


class StandInProducer:
    """Records what was sent; `fail_key`: that record's future raises. `during_flush`: called
    at flush time (the broker's acks), to look at the database while the batch is in flight."""

    def __init__(self, fail_key: str | None = None, during_flush=None):
        self.sent: list[tuple[str, str, bytes]] = []
        self.fail_key = fail_key
        self.during_flush = during_flush
        self.flushed = 0
        self.closed = False

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key.decode(), value))
        return Acked(RuntimeError("not acknowledged") if key.decode() == self.fail_key else None)

    def flush(self, timeout=None):
        self.flushed += 1
        if self.during_flush is not None:
            self.during_flush()

    def close(self, timeout=None):
        self.closed = True


@pytest.fixture
def conn(pg, settings_for):
    settings = settings_for("intake")
    with contextlib.closing(psycopg.connect(pg.admin_url(), autocommit=True)) as admin:
        with psycopg.connect(settings.database_url) as migrating:  # intake.outbox, the shape to copy
            apply_migrations(migrating, "intake", "services.intake")
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        admin.execute(f"CREATE SCHEMA {SCHEMA}")
        admin.execute(f"CREATE TABLE {SCHEMA}.outbox (LIKE intake.outbox INCLUDING ALL)")
        with psycopg.connect(pg.admin_url(), autocommit=True) as c:  # as the relay's own
            yield c
        admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


def relay_with(producer: StandInProducer) -> OutboxRelay:
    relay = OutboxRelay("postgresql://unused", SCHEMA, "unused:9092", client_id="relay-batch-test")
    relay._producer = producer
    return relay


def add_rows(conn: psycopg.Connection, keys: list[str]) -> None:
    for key in keys:
        event = {"id": str(uuid.uuid4()), "type": "test", "data": {"key": key}}
        conn.execute(f"INSERT INTO {SCHEMA}.outbox (event_id, topic, key, payload, traceparent)"
                     " VALUES (%s, 't', %s, %s, NULL)", (event["id"], key, Jsonb(event)))
    conn.commit()


def sent_keys(conn: psycopg.Connection) -> set[str]:
    keys = {r[0] for r in conn.execute(f"SELECT key FROM {SCHEMA}.outbox WHERE sent_at IS NOT NULL")}
    conn.commit()
    return keys


def test_a_batch_is_sent_in_id_order_and_marked_sent_after_its_acks(conn, pg):
    add_rows(conn, ["a", "b", "c"])
    seen_during_flush = []
    producer = StandInProducer(during_flush=lambda: seen_during_flush.append(unsent_seen_elsewhere()))

    def unsent_seen_elsewhere() -> int:
        # Another session, while the broker is acking: nothing is marked yet.
        with psycopg.connect(pg.admin_url()) as other:
            return unsent_count(other, SCHEMA)

    assert relay_with(producer).publish_batch(conn) == 3
    assert [key for _t, key, _v in producer.sent] == ["a", "b", "c"]
    assert seen_during_flush == [3]
    assert sent_keys(conn) == {"a", "b", "c"}
    assert relay_with(producer).publish_batch(conn) == 0  # nothing left: nothing sent twice
    assert len(producer.sent) == 3


def test_one_unacknowledged_send_leaves_the_whole_batch_unsent_and_the_connection_usable(conn):
    add_rows(conn, ["a", "b", "c"])
    failing = StandInProducer(fail_key="b")
    relay = relay_with(failing)
    with pytest.raises(RuntimeError, match="not acknowledged"):
        relay.publish_batch(conn)
    assert failing.closed and relay._producer is None  # a fresh producer (idempotence state) next time
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert sent_keys(conn) == set()
    # The retry publishes the whole batch again, in the same order.
    working = StandInProducer()
    assert relay_with(working).publish_batch(conn) == 3
    assert [key for _t, key, _v in working.sent] == ["a", "b", "c"]
    assert sent_keys(conn) == {"a", "b", "c"}


def test_only_the_marking_transaction_skips_waiting_for_the_wal_flush(conn):
    add_rows(conn, ["a"])
    during = []
    producer = StandInProducer(during_flush=lambda: during.append(
        conn.execute("SHOW synchronous_commit").fetchone()[0]))
    assert relay_with(producer).publish_batch(conn) == 1
    assert during == ["off"]
    assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"


def test_an_empty_look_ends_its_transaction(conn):
    assert relay_with(StandInProducer()).publish_batch(conn) == 0
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_batch_needs_a_connection_in_autocommit(pg):
    with psycopg.connect(pg.admin_url()) as conn, pytest.raises(ValueError, match="autocommit"):
        relay_with(StandInProducer()).publish_batch(conn)


def test_a_full_batch_takes_batch_size_rows_and_leaves_the_rest(conn):
    add_rows(conn, [f"k{i}" for i in range(BATCH_SIZE + 2)])
    producer = StandInProducer()
    relay = relay_with(producer)
    assert relay.publish_batch(conn) == BATCH_SIZE
    assert relay.publish_batch(conn) == 2
    assert len(producer.sent) == BATCH_SIZE + 2
    assert len(sent_keys(conn)) == BATCH_SIZE + 2
