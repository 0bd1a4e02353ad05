"""The consumer loop: each event is applied in one database transaction together with its
inbox row (primary key = event id), and Kafka offsets are committed only after that commit.

- A redelivered event hits the inbox primary key and is skipped: applied once.
- An event that is not a valid CloudEvent, or that the handler rejects as invalid
  (PoisonEvent), goes to `<topic>.dlq` at once, with the error in its headers.
- An event whose handler keeps failing for another reason goes there after MAX_ATTEMPTS.
- A message is dead-lettered once per consumer group, even if it is delivered again (the
  offset commit comes after the whole batch, so a crash or a rebalance in between replays
  it). The dead letter cannot be written in the same transaction as a database row, so a
  marker row in the inbox table (keyed by the message's coordinates) records each step:
  an attempt is committed *before* the dead letter is sent (under the row's lock) and the
  row is marked done once the broker has acked it. Finding an unfinished attempt, the next
  delivery first looks in the .dlq topic for the dead letter carrying that marker
  (header `dlq.id`) and sends it only if it is not there. See _dead_letter.
- While the database is down, the partition is rewound to the failed event and the loop
  waits: nothing is skipped (nor dead-lettered), and polling goes on so the consumer keeps
  its group membership.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import psycopg
from kafka import KafkaConsumer
from kafka.errors import IllegalStateError
from kafka.structs import OffsetAndMetadata, TopicPartition
from psycopg_pool import ConnectionPool, PoolTimeout

from . import envelope, metrics
from .error_text import SafeMessageError, safe_error_text
from .kafka_io import make_consumer, make_producer, read_to_end
from .settings import dlq_topic

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3

# Inbox rows of dead letters (see _dead_letter): "dead-letter:attempt:<uuid>" while one is
# being sent, "dead-lettered:<error type>" once the broker has it.
DLQ_ATTEMPT = "dead-letter:attempt:"
DLQ_DONE = "dead-lettered:"
DLQ_ID_HEADER = "dlq.id"
DLQ_CLOCK_SLACK = timedelta(minutes=5)


class PoisonEvent(SafeMessageError):
    """The event can never be applied (bad data); dead-letter it without retrying. Its message
    (the `dlq.error` header, logs) names the field and the rule it broke, never a value of the
    event: build it from error_text.validation_reason, not from marshmallow's messages."""


def describe_error(error: Exception) -> str:
    """What went wrong, without the values a database error's detail may quote: the one
    function that decides (services/common/error_text.py)."""
    return safe_error_text(error)


class DeadLetterFailed(SafeMessageError):
    """The dead-letter topic did not take the message (broker down): try again later."""


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
        kafka_security: dict | None = None,
    ):
        self.service = service
        self.pool = pool
        self.kafka_bootstrap = kafka_bootstrap
        self.kafka_security = kafka_security or {}  # kafka_io.client_security(settings)
        self.group_id = group_id
        self.handlers = handlers  # topic -> handler
        self._consumer = None
        self._dlq_producer = None
        self._lag_shown: set[TopicPartition] = set()

    # -- lifecycle -------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._consumer = make_consumer(
            self.kafka_bootstrap, self.group_id, list(self.handlers), client_id=f"{self.service}-worker",
            security=self.kafka_security,
        )
        try:
            while not stop.is_set():
                batches = self._consumer.poll(timeout_ms=500)
                for tp, messages in batches.items():
                    if stop.is_set():
                        break
                    self._process_partition(tp, messages, stop)
                self._forget_lag(keep=self._consumer.assignment() or set())
        finally:
            self._forget_lag(keep=set())
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
        self._show_lag(tp, messages[0].offset if done_offset is None else done_offset + 1)

    # -- lag, for /metrics ----------------------------------------------------------------
    def _show_lag(self, tp: TopicPartition, next_offset: int) -> None:
        try:
            end = self._consumer.highwater(tp)  # as of the last fetch: no round trip
        except IllegalStateError:  # revoked meanwhile: its new owner shows it
            return
        if end is not None:
            metrics.CONSUMER_LAG.labels(self.service, tp.topic, str(tp.partition)).set(max(0, end - next_offset))
            self._lag_shown.add(tp)

    def _forget_lag(self, keep: set[TopicPartition]) -> None:
        """Partitions another member owns now (a rebalance) are that member's to show."""
        for tp in self._lag_shown - keep:
            metrics.CONSUMER_LAG.remove(self.service, tp.topic, str(tp.partition))
        self._lag_shown &= keep

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
            return self._dead_letter(message, exc, stop)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                outcome = self._apply(event, delivery)
                metrics.EVENTS_CONSUMED.labels(self.service, message.topic, outcome).inc()
                return True
            except PoisonEvent as exc:
                return self._dead_letter(message, exc, stop)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                log.warning("database unavailable; pausing partition",
                            extra={"topic": message.topic, "error": type(exc).__name__})
                stop.wait(1.0)
                return False  # not an attempt against the event: the database is at fault
            except Exception as exc:
                fields = {"event_id": event.get("id"), "attempt": attempt, "error": safe_error_text(exc)}
                if isinstance(exc, psycopg.Error):
                    # No traceback: a constraint's DETAIL quotes the row's values (a duplicate
                    # patient MRN, say), and logs hold no patient data.
                    log.warning("event handler failed", extra=fields)
                else:  # a bug: its frames (the logging filter strips the exception's text)
                    log.warning("event handler failed", exc_info=True, extra=fields)
                if attempt == MAX_ATTEMPTS:
                    return self._dead_letter(message, exc, stop)
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

    def dead_letter_marker(self, message) -> str:
        """The inbox key recording that this group dead-lettered this message. Coordinates,
        not the event id: a message may not have one, and a replayed copy (a new offset)
        that fails again must be dead-lettered again, while an applied event id must not
        look dead-lettered."""
        return f"dlq:{self.group_id}:{message.topic}:{message.partition}:{message.offset}"

    def _dead_letter(self, message, error: Exception, stop: threading.Event) -> bool:
        """True once the message is parked in `<topic>.dlq` (now, or by an earlier delivery).

        Exactly once, whatever dies when:
        1. claim: under the marker row's lock, note "attempt <id>" and commit. A row already
           marked done means an earlier delivery parked it: nothing to do.
        2. send: under the row's lock again, if the claim is still ours, send and wait for
           the broker's ack, then mark the row done and commit. If an earlier attempt was
           claimed (it may have died between the ack and its commit), look for its dead
           letter in the .dlq topic first, and only send when it is not there.
        A delivery that finds another claim in step 2 (a rival consumer during a rebalance)
        returns False and comes back to it, so the offset never moves past a message that
        is not parked.
        """
        marker = self.dead_letter_marker(message)
        attempt = f"{DLQ_ATTEMPT}{uuid.uuid4()}"
        try:
            with self.pool.connection() as conn:
                with conn.transaction():
                    # A new row is the first attempt; ON CONFLICT: a rival inserted it first.
                    first = conn.execute(
                        f"INSERT INTO {self.service}.inbox (event_id, topic, event_type) VALUES (%s, %s, %s)"
                        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                        (marker, message.topic, attempt)).fetchone() is not None
                    earlier = None  # when an earlier attempt began, if there was one
                    if not first:
                        state, earlier = conn.execute(f"SELECT event_type, received_at FROM {self.service}.inbox"
                                                      " WHERE event_id = %s FOR UPDATE", (marker,)).fetchone()
                        if state.startswith(DLQ_DONE):
                            log.info("message already dead-lettered", extra={
                                "topic": message.topic, "partition": message.partition, "offset": message.offset})
                            return True
                        conn.execute(f"UPDATE {self.service}.inbox SET event_type = %s WHERE event_id = %s",
                                     (attempt, marker))
                with conn.transaction():
                    current = conn.execute(f"SELECT event_type FROM {self.service}.inbox"
                                           " WHERE event_id = %s FOR UPDATE", (marker,)).fetchone()[0]
                    if current.startswith(DLQ_DONE):
                        return True
                    if current != attempt:
                        log.info("another consumer is dead-lettering this message; coming back to it",
                                 extra={"topic": message.topic, "offset": message.offset})
                        stop.wait(1.0)
                        return False
                    if earlier is None or not self._already_parked(message, marker, earlier):
                        self._send_dead_letter(message, error, marker)
                    conn.execute(f"UPDATE {self.service}.inbox SET event_type = %s WHERE event_id = %s",
                                 (f"{DLQ_DONE}{type(error).__name__}", marker))
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("database unavailable; not dead-lettering now",
                        extra={"topic": message.topic, "error": type(exc).__name__})
            stop.wait(1.0)
            return False
        except DeadLetterFailed:
            log.exception("could not dead-letter a message; will retry")
            stop.wait(1.0)
            return False
        log.warning("message dead-lettered", extra={"topic": message.topic, "offset": message.offset,
                                                    "error_type": type(error).__name__})
        metrics.EVENTS_CONSUMED.labels(self.service, message.topic, "dead_lettered").inc()
        return True

    def _already_parked(self, message, marker: str, since: datetime) -> bool:
        """Whether a dead letter with this marker is in the .dlq topic (written after `since`,
        give or take the clocks of the database and the broker)."""
        topic = dlq_topic(message.topic)
        consumer = None
        try:
            consumer = KafkaConsumer(bootstrap_servers=self.kafka_bootstrap, group_id=None,
                                     client_id=f"{self.service}-dlq-check", enable_auto_commit=False,
                                     request_timeout_ms=10_000, **self.kafka_security)
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
            consumer.assign(partitions)
            after_ms = int((since - DLQ_CLOCK_SLACK).timestamp() * 1000)
            starts = consumer.offsets_for_times({tp: after_ms for tp in partitions})  # None: nothing since
            records, _end = read_to_end(
                consumer, {tp: None if starts.get(tp) is None else starts[tp].offset for tp in partitions}, 30)
            for record in records:
                if (DLQ_ID_HEADER, marker.encode()) in (record.headers or []):
                    log.info("dead letter of an interrupted attempt found; not sending it again",
                             extra={"topic": topic, "offset": record.offset})
                    return True
            return False
        except Exception as exc:
            raise DeadLetterFailed(f"could not look for an earlier dead letter: {safe_error_text(exc)}") from exc
        finally:
            if consumer is not None:
                consumer.close(autocommit=False)

    def _send_dead_letter(self, message, error: Exception, marker: str) -> None:
        # The original headers (traceparent...), without those of an earlier dead-lettering.
        headers = [(k, v) for k, v in (message.headers or []) if not k.startswith("dlq.") or k == "dlq.replayed_from"]
        headers += [
            ("dlq.error", safe_error_text(error).encode()),
            ("dlq.error_type", type(error).__name__.encode()),
            ("dlq.original_topic", message.topic.encode()),
            ("dlq.original_partition", str(message.partition).encode()),
            ("dlq.original_offset", str(message.offset).encode()),
            ("dlq.consumer_group", self.group_id.encode()),
            ("dlq.failed_at", datetime.now(timezone.utc).isoformat().encode()),
            (DLQ_ID_HEADER, marker.encode()),
        ]
        try:
            if self._dlq_producer is None:
                self._dlq_producer = make_producer(self.kafka_bootstrap, f"{self.service}-dlq", self.kafka_security)
            # Wait for the broker's ack: the offset must not move past a message that is
            # neither applied nor safely parked.
            self._dlq_producer.send(dlq_topic(message.topic), key=message.key, value=message.value,
                                    headers=headers).get(timeout=30)
        except Exception as exc:
            # A fresh producer next time, so that its idempotence state starts clean.
            producer, self._dlq_producer = self._dlq_producer, None
            if producer is not None:
                try:
                    producer.close(timeout=5)
                except Exception:
                    log.warning("dead-letter producer close failed", exc_info=True)
            raise DeadLetterFailed(safe_error_text(exc)) from exc
