"""The consumer loop: each event is applied in one database transaction together with its
inbox row (primary key = event id), and Kafka offsets are committed only after that commit.

- A redelivered event hits the inbox primary key and is skipped: applied once.
- An event that is not a valid CloudEvent, or that the handler rejects as invalid
  (PoisonEvent), goes to `<topic>.dlq` at once, with the error in its headers.
- An event whose handler keeps failing for another reason goes there after MAX_ATTEMPTS.
- While the database is down, the partition is rewound to the failed event and the loop
  waits: nothing is skipped, and polling goes on so the consumer keeps its group membership.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import psycopg
from kafka.structs import OffsetAndMetadata, TopicPartition
from psycopg_pool import ConnectionPool, PoolTimeout

from . import envelope, metrics
from .kafka_io import make_consumer, make_producer
from .settings import dlq_topic

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3


class PoisonEvent(Exception):
    """The event can never be applied (bad data); dead-letter it without retrying."""


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int
    key: str | None
    traceparent: str | None


Handler = Callable[[psycopg.Connection, dict, Delivery], None]


def _header(message, name: str) -> str | None:
    for key, value in message.headers or []:
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None


class InboxConsumer:
    def __init__(
        self,
        *,
        service: str,
        pool: ConnectionPool,
        kafka_bootstrap: str,
        group_id: str,
        handlers: dict[str, Handler],
    ):
        self.service = service
        self.pool = pool
        self.kafka_bootstrap = kafka_bootstrap
        self.group_id = group_id
        self.handlers = handlers  # topic -> handler
        self._consumer = None
        self._dlq_producer = None

    # -- lifecycle -------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._consumer = make_consumer(
            self.kafka_bootstrap, self.group_id, list(self.handlers), client_id=f"{self.service}-worker"
        )
        try:
            while not stop.is_set():
                batches = self._consumer.poll(timeout_ms=500)
                for tp, messages in batches.items():
                    if stop.is_set():
                        break
                    self._process_partition(tp, messages, stop)
        finally:
            self._consumer.close(autocommit=False)
            if self._dlq_producer is not None:
                self._dlq_producer.close(timeout=5)

    # -- one partition's batch ----------------------------------------------------------
    def _process_partition(self, tp: TopicPartition, messages, stop: threading.Event) -> None:
        done_offset = None
        for message in messages:
            if not self._process_with_retries(message, stop):
                # Rewind to the message we could not apply, so the next poll starts there.
                self._consumer.seek(tp, message.offset)
                break
            done_offset = message.offset
        if done_offset is not None:
            self._commit(tp, done_offset + 1)

    def _commit(self, tp: TopicPartition, next_offset: int) -> None:
        try:
            self._consumer.commit({tp: OffsetAndMetadata(next_offset, "", -1)})
        except Exception as exc:
            # After a rebalance the new owner re-reads from the last commit; the inbox
            # makes that harmless, so a failed commit is logged, not fatal.
            log.warning("offset commit failed", extra={"topic": tp.topic, "partition": tp.partition,
                                                       "error": type(exc).__name__})

    def _process_with_retries(self, message, stop: threading.Event) -> bool:
        """True when the message is done with (applied, duplicate or dead-lettered)."""
        delivery = Delivery(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key.decode(errors="replace") if message.key else None,
            traceparent=_header(message, "traceparent"),
        )
        try:
            event = envelope.decode(message.value)
        except envelope.InvalidEvent as exc:
            return self._dead_letter(message, exc)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                outcome = self._apply(event, delivery)
                metrics.EVENTS_CONSUMED.labels(self.service, message.topic, outcome).inc()
                return True
            except PoisonEvent as exc:
                return self._dead_letter(message, exc)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                log.warning("database unavailable; pausing partition",
                            extra={"topic": message.topic, "error": type(exc).__name__})
                stop.wait(1.0)
                return False  # not an attempt against the event: the database is at fault
            except Exception as exc:
                log.warning("event handler failed", exc_info=True,
                            extra={"event_id": event.get("id"), "attempt": attempt})
                if attempt == MAX_ATTEMPTS:
                    return self._dead_letter(message, exc)
                time.sleep(0.2 * attempt)
        return False

    def _apply(self, event: dict, delivery: Delivery) -> str:
        handler = self.handlers[delivery.topic]
        with self.pool.connection() as conn:
            with conn.transaction():
                inserted = conn.execute(
                    f"INSERT INTO {self.service}.inbox (event_id, topic, event_type)"
                    " VALUES (%s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                    (event["id"], delivery.topic, event["type"]),
                ).fetchone()
                if inserted is None:
                    return "duplicate"
                handler(conn, event, delivery)
        return "applied"

    def _dead_letter(self, message, error: Exception) -> bool:
        if self._dlq_producer is None:
            self._dlq_producer = make_producer(self.kafka_bootstrap, f"{self.service}-dlq")
        headers = list(message.headers or []) + [
            ("dlq.error", str(error)[:2000].encode()),
            ("dlq.error_type", type(error).__name__.encode()),
            ("dlq.original_topic", message.topic.encode()),
            ("dlq.original_partition", str(message.partition).encode()),
            ("dlq.original_offset", str(message.offset).encode()),
            ("dlq.consumer_group", self.group_id.encode()),
            ("dlq.failed_at", datetime.now(timezone.utc).isoformat().encode()),
        ]
        try:
            # Wait for the broker's ack: the offset must not move past a message that is
            # neither applied nor safely parked.
            self._dlq_producer.send(dlq_topic(message.topic), key=message.key, value=message.value,
                                    headers=headers).get(timeout=30)
        except Exception:
            log.exception("could not dead-letter a message; will retry")
            return False
        log.warning("message dead-lettered", extra={"topic": message.topic, "offset": message.offset,
                                                    "error_type": type(error).__name__})
        metrics.EVENTS_CONSUMED.labels(self.service, message.topic, "dead_lettered").inc()
        return True
