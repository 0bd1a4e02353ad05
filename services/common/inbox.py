"""The consumer loop: a poll's events are applied in ONE database transaction, and Kafka
offsets are committed only after that commit (_process_poll). What a backlog's drain costs is
mostly round trips, so the common case (every event valid, every handler succeeds) is applied
whole (_apply_whole): one INSERT of the batch's inbox rows (primary key = event id) tells which
events are new, their handlers run with no savepoint between them, and handlers that can
(BatchHandler: prepared without I/O, then written together) write a run of events with one
statement. Anything else (a message that is not a CloudEvent, a poison event, a handler
error) rolls that transaction back and the batch is applied event by event, each under a
SAVEPOINT with its inbox row (_apply_each), as below.

- A redelivered event hits the inbox primary key and is skipped: applied once.
- An event that is not a valid CloudEvent, or that the handler rejects as invalid
  (PoisonEvent), goes to `<topic>.dlq` at once, with the error in its headers.
- An event whose handler keeps failing for another reason goes there after MAX_ATTEMPTS:
  its first failure ends the batch (the events before it commit), and it is retried alone,
  one transaction per attempt, so that no batch holds its locks while it waits.
- A message is dead-lettered once per consumer group, even if it is delivered again (the
  offset commit comes after the whole batch, so a crash or a rebalance in between replays
  it). The dead letter cannot be written in the same transaction as a database row, so a
  marker row in the inbox table (keyed by the message's coordinates) records each step:
  an attempt is committed *before* the dead letter is sent (under the row's lock) and the
  row is marked done once the broker has acked it. Finding an unfinished attempt, the next
  delivery first looks in the .dlq topic for the dead letter carrying that marker
  (header `dlq.id`) and sends it only if it is not there. See _dead_letter.
- While the database is down, the batch's transaction is lost whole (nothing half-applied),
  each of its partitions is rewound to its first event not committed, and the loop waits:
  nothing is skipped (nor dead-lettered), and polling goes on so the consumer keeps its
  group membership.
- Offsets are committed at most every COMMIT_EVERY_S (and when the consumer stops), not after
  every poll: at moderate load a poll brings a few events, and each commit was a broker request
  (and its client-side Python) of its own (issue 15). A crash replays at most that long's
  events, which the inbox skips.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
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
from .kafka_sockets import close_refused_sockets
from .settings import dlq_topic

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3

# Inbox rows of dead letters (see _dead_letter): "dead-letter:attempt:<uuid>" while one is
# being sent, "dead-lettered:<error type>" once the broker has it.
DLQ_ATTEMPT = "dead-letter:attempt:"
DLQ_DONE = "dead-lettered:"
DLQ_ID_HEADER = "dlq.id"
DLQ_CLOCK_SLACK = timedelta(minutes=5)
CLOSING_COMMIT_TIMEOUT_MS = 5_000
COMMIT_EVERY_S = 0.5  # offsets done wait at most this long (and a poll's timeout) to be committed


class PoisonEvent(SafeMessageError):
    """The event can never be applied (bad data); dead-letter it without retrying. Its message
    (the `dlq.error` header, logs) names the field and the rule it broke, never a value of the
    event: build it from error_text.validation_reason, not from marshmallow's messages."""


def describe_error(error: Exception) -> str:
    """What went wrong, without the values a database error's detail may quote: the one
    function that decides (services/common/error_text.py)."""
    return safe_error_text(error)


def _log_commit_failure(partitions: int, exc: BaseException) -> None:
    # After a rebalance the new owner re-reads from the last commit; the inbox makes that
    # harmless, so a failed commit is logged, not fatal.
    log.warning("offset commit failed", extra={"partitions": partitions, "error": type(exc).__name__})


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


@dataclass(frozen=True)
class BatchHandler:
    """A handler in two steps, so that a batch's events are written together: `prepare(event,
    delivery)` reads and checks one event without I/O (PoisonEvent when it is bad) and
    `write(conn, prepared)` stores a list of prepared events in the caller's transaction,
    idempotent per event like any handler (a redelivery with a new event id). Called as a
    Handler, it does one event."""
    prepare: Callable[[dict, Delivery], object]
    write: Callable[[psycopg.Connection, list], object]

    def __call__(self, conn: psycopg.Connection, event: dict, delivery: Delivery) -> None:
        self.write(conn, [self.prepare(event, delivery)])


def _count_consumed(service: str, outcomes: list[tuple[str, str]]) -> None:
    """EVENTS_CONSUMED for a batch's (topic, outcome) pairs, one increment per pair that
    occurs: a labelled child looked up per event was ~2% of a drain's consumer (issue 15)."""
    for (topic, outcome), count in Counter(outcomes).items():
        metrics.EVENTS_CONSUMED.labels(service, topic, outcome).inc(count)


class _NotWhole(Exception):
    """The batch cannot be applied whole (poison, or a handler failed): go event by event."""


def _header(message, name: str) -> str | None:
    for key, value in message.headers or []:
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None


def _delivery(message) -> Delivery:
    return Delivery(topic=message.topic, partition=message.partition, offset=message.offset,
                    key=message.key.decode(errors="replace") if message.key else None,
                    traceparent=_header(message, "traceparent"))


@dataclass
class _Item:
    """One consumed message, decoded once: `event`, or `invalid` (why it is not a CloudEvent)."""
    tp: TopicPartition
    message: object
    delivery: Delivery
    event: dict | None = None
    invalid: envelope.InvalidEvent | None = None

    @classmethod
    def read(cls, tp: TopicPartition, message) -> _Item:
        item = cls(tp, message, _delivery(message))
        try:
            item.event = envelope.decode(message.value)
        except envelope.InvalidEvent as exc:
            item.invalid = exc
        return item


@dataclass
class _BatchResult:
    finished: list[_Item] = field(default_factory=list)  # applied, duplicate or parked
    halted: dict[TopicPartition, int] = field(default_factory=dict)  # partition -> rewind to
    failed: int | None = None  # index of the item whose handler failed; later ones not tried
    lost: bool = False  # the database went away: nothing of the batch is applied


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
        # Offsets committed asynchronously and not yet acknowledged (see _commit).
        self._uncommitted: dict[TopicPartition, OffsetAndMetadata] = {}
        # Offsets done (their transaction committed) and not yet sent to the broker.
        self._done: dict[TopicPartition, int] = {}
        self._last_commit_sent = float("-inf")
        self._clock = time.monotonic
        self._conn: psycopg.Connection | None = None  # the batches' connection (_batch_connection)

    # -- lifecycle -------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self._consumer = make_consumer(
            self.kafka_bootstrap, self.group_id, list(self.handlers), client_id=f"{self.service}-worker",
            security=self.kafka_security,
        )
        try:
            while not stop.is_set():
                batches = self._consumer.poll(timeout_ms=500)
                if batches:
                    self._process_poll(batches, stop)
                self._commit_when_due()
                self._forget_lag(keep=self._consumer.assignment() or set())
        finally:
            self._release_connection()
            self._forget_lag(keep=set())
            self._commit_before_close()
            self._consumer.close(autocommit=False)
            if self._dlq_producer is not None:
                self._dlq_producer.close(timeout=5)

    @contextlib.contextmanager
    def _batch_connection(self):
        """The connection the batches are applied on, kept from one poll to the next: a pool
        checkout per poll cost a round trip (the pool's check of the connection), on every
        hop of an event's path (issue 15). Given back to the pool on any error (the pool
        drops it if broken; the next checkout is checked, as after a database restart) and
        when the consumer stops. Other steps (a retry, a dead letter) check out their own."""
        if self._conn is None:
            self._conn = self.pool.getconn()
        try:
            yield self._conn
        except BaseException:
            self._release_connection()
            raise

    def _release_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.pool.putconn(conn)

    # -- one poll's messages ------------------------------------------------------------
    def _process_poll(self, batches: dict[TopicPartition, list], stop: threading.Event) -> None:
        """Apply a poll's messages in as few transactions as possible (see _apply_batch), then
        commit every partition's offset past what is done, in one request. A partition that
        cannot go on (database down, a dead letter not taken) is rewound to its first message
        not done, so that the next poll starts there."""
        remaining = [_Item.read(tp, message) for tp, messages in batches.items() for message in messages]
        done: dict[TopicPartition, int] = {}    # next offset, per partition
        halted: dict[TopicPartition, int] = {}  # rewind to this offset, per partition
        while remaining and not stop.is_set():
            result = self._apply_batch(remaining, stop)
            for item in result.finished:
                done[item.tp] = item.message.offset + 1
            halted.update(result.halted)
            if result.lost:
                break
            if result.failed is None:
                remaining = []
                break
            failed = remaining[result.failed]
            # A handler error: retried alone, in transactions of its own, as before batching.
            if self._process_with_retries(failed.message, stop, first_attempt=2):
                done[failed.tp] = failed.message.offset + 1
            else:
                halted[failed.tp] = failed.message.offset
            remaining = [i for i in remaining[result.failed + 1:] if i.tp not in halted]
        for item in remaining:  # not done: lost with a batch, or the worker is stopping
            halted.setdefault(item.tp, item.message.offset)
        for tp, offset in halted.items():
            self._consumer.seek(tp, offset)
        self._commit({tp: offset for tp, offset in done.items()})
        for tp, messages in batches.items():
            self._show_lag(tp, halted.get(tp, done.get(tp, messages[0].offset)))

    def _apply_batch(self, items: list[_Item], stop: threading.Event) -> _BatchResult:
        """Apply `items` whole if they all go through (_apply_whole), else one by one."""
        if all(item.invalid is None for item in items):
            try:
                return self._apply_whole(items)
            except _NotWhole:
                pass  # what failed is found, retried or dead-lettered (and logged) below
            except (psycopg.OperationalError, PoolTimeout) as exc:
                log.warning("database unavailable; pausing partition",
                            extra={"topic": items[0].tp.topic, "error": type(exc).__name__})
                stop.wait(1.0)
                return _BatchResult(lost=True)
        return self._apply_each(items, stop)

    def _apply_whole(self, items: list[_Item]) -> _BatchResult:
        """Every event of `items` in one transaction with no savepoints: the inbox rows in one
        statement, then the handlers of the new events in order, BatchHandlers' runs of
        consecutive events written together. Raises _NotWhole, with nothing applied, when an
        event cannot be prepared or a handler fails (the transaction is rolled back whole);
        OperationalError/PoolTimeout when the database is gone."""
        prepared = {}
        for index, item in enumerate(items):
            handler = self.handlers[item.delivery.topic]
            if isinstance(handler, BatchHandler):
                try:
                    prepared[index] = handler.prepare(item.event, item.delivery)
                except Exception as exc:
                    raise _NotWhole() from exc
        try:
            with self._batch_connection() as conn, conn.transaction():
                new = self._insert_inbox_rows(conn, items)
                run: list = []
                run_handler: BatchHandler | None = None
                for index, item in enumerate(items):
                    if index not in new:
                        continue
                    handler = self.handlers[item.delivery.topic]
                    if run and handler is not run_handler:
                        run_handler.write(conn, run)
                        run = []
                    if isinstance(handler, BatchHandler):
                        run_handler = handler
                        run.append(prepared[index])
                    else:
                        handler(conn, item.event, item.delivery)
                if run:
                    run_handler.write(conn, run)
        except (psycopg.OperationalError, PoolTimeout):
            raise
        except Exception as exc:
            raise _NotWhole() from exc
        _count_consumed(self.service, [(item.tp.topic, "applied" if index in new else "duplicate")
                                       for index, item in enumerate(items)])
        return _BatchResult(finished=list(items))

    def _insert_inbox_rows(self, conn: psycopg.Connection, items: list[_Item]) -> set[int]:
        """Insert the inbox rows of `items` in one statement; the indexes of the events that
        are new (the first of each event id, not in the inbox before). In event id order, so
        that two consumers inserting overlapping batches (a rebalance) lock in one order."""
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            first.setdefault(item.event["id"], index)
        ids = sorted(first)
        rows = conn.execute(
            f"INSERT INTO {self.service}.inbox (event_id, topic, event_type)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])"
            " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (ids, [items[first[i]].delivery.topic for i in ids], [items[first[i]].event["type"] for i in ids]),
        ).fetchall()
        return {first[row[0]] for row in rows}

    def _apply_each(self, items: list[_Item], stop: threading.Event) -> _BatchResult:
        """Apply `items` in ONE transaction, each event under a SAVEPOINT with its inbox row.

        - A duplicate (its event id in the inbox, or earlier in the batch) is skipped.
        - Poison (not a CloudEvent, or PoisonEvent from its handler) is rolled back to its
          savepoint and dead-lettered at once (_dead_letter keeps its own marker rows, on
          another connection); if it cannot be parked now, its partition halts there.
        - Any other handler error ends the batch at that event (`failed`): the events before
          it commit, and the caller retries it alone. Retrying it here would keep the locks
          of the whole batch while it waits, and two workers' batches could wait on each
          other.
        - Whatever else stops the loop (a crash of the consumer thread, say) first commits
          the events applied before it, each whole with its inbox row.
        - The database gone (or a deadlock, any OperationalError): the transaction is rolled
          back, nothing of it is applied (`lost`), and the caller rewinds.
        """
        result = _BatchResult()
        applied: list[tuple[_Item, str]] = []
        crash: BaseException | None = None
        try:
            with self._batch_connection() as conn, conn.transaction():
                known = self._known_event_ids(conn, [i.event["id"] for i in items if i.event is not None])
                for index, item in enumerate(items):
                    if item.tp in result.halted:
                        continue
                    try:
                        if item.invalid is not None:
                            raise item.invalid
                        outcome = self._apply_one(conn, item, known)
                    except (envelope.InvalidEvent, PoisonEvent) as exc:
                        if self._dead_letter(item.message, exc, stop):
                            result.finished.append(item)
                        else:
                            result.halted[item.tp] = item.message.offset
                        continue
                    except (psycopg.OperationalError, PoolTimeout):
                        raise
                    except Exception as exc:
                        self._log_failure(item.event, 1, exc)
                        result.failed = index
                        break
                    except BaseException as exc:
                        crash = exc
                        break
                    applied.append((item, outcome))
                    result.finished.append(item)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("database unavailable; pausing partition",
                        extra={"topic": items[0].tp.topic, "error": type(exc).__name__})
            stop.wait(1.0)
            return _BatchResult(lost=True)
        _count_consumed(self.service, [(item.tp.topic, outcome) for item, outcome in applied])
        if crash is not None:
            raise crash
        return result

    def _known_event_ids(self, conn: psycopg.Connection, event_ids: list[str]) -> set[str]:
        """The batch's event ids already in the inbox: skipped without a savepoint."""
        if not event_ids:
            return set()
        rows = conn.execute(f"SELECT event_id FROM {self.service}.inbox WHERE event_id = ANY(%s)",
                            (event_ids,)).fetchall()
        return {r[0] for r in rows}

    def _apply_one(self, conn: psycopg.Connection, item: _Item, known: set[str]) -> str:
        """One event under its savepoint, in the batch's transaction."""
        if item.event["id"] in known:
            return "duplicate"
        with conn.transaction():
            if not self._insert_inbox_row(conn, item.event, item.delivery):
                return "duplicate"  # a rival consumer's, or earlier in this batch
            self.handlers[item.delivery.topic](conn, item.event, item.delivery)
        return "applied"

    def _insert_inbox_row(self, conn: psycopg.Connection, event: dict, delivery: Delivery) -> bool:
        return conn.execute(
            f"INSERT INTO {self.service}.inbox (event_id, topic, event_type)"
            " VALUES (%s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (event["id"], delivery.topic, event["type"]),
        ).fetchone() is not None

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

    def _commit(self, next_offsets: dict[TopicPartition, int]) -> None:
        """Note the offsets (the database has committed their events); sent when due."""
        self._done.update(next_offsets)
        self._commit_when_due()

    def _commit_when_due(self) -> None:
        """Send the offsets done once COMMIT_EVERY_S has passed since the last commit sent,
        without waiting for the broker's answer: a synchronous commit held the consumer a
        broker round trip per poll (11-14 ms p50 on the 2-core bench, about half of a busy
        worker's cycle), which every event behind it waited too (issue 15). A commit that
        fails or never arrives (crash, rebalance) only means a redelivery from the last
        committed offset, which the inbox skips as duplicates; commits of one consumer reach
        the coordinator in order. Partitions no longer assigned (a rebalance) are dropped:
        their new owner starts from the last commit, and an old offset must not overwrite
        what it commits."""
        if not self._done or self._clock() - self._last_commit_sent < COMMIT_EVERY_S:
            return
        assigned = self._consumer.assignment()
        next_offsets = {tp: offset for tp, offset in self._done.items() if tp in assigned}
        self._done = {}
        self._last_commit_sent = self._clock()
        if next_offsets:
            self._send_commit(next_offsets)

    def _send_commit(self, next_offsets: dict[TopicPartition, int]) -> None:
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in next_offsets.items()}
        self._uncommitted.update(offsets)
        try:
            self._consumer.commit_async(offsets, callback=self._on_commit_done)
        except Exception as exc:
            _log_commit_failure(len(offsets), exc)

    def _on_commit_done(self, offsets: dict, response) -> None:
        """Called from poll() (kafka-python) once the broker answered, or the request failed."""
        if isinstance(response, Exception):
            _log_commit_failure(len(offsets), response)
            return
        for tp, meta in offsets.items():  # acknowledged: no final commit needed for these
            if self._uncommitted.get(tp) == meta:
                del self._uncommitted[tp]

    def _commit_before_close(self) -> None:
        """On the way out, wait for the last offsets (a stop, or a restart after an error),
        so that a clean stop leaves no redelivery behind; bounded, since the broker may be
        what failed. Only partitions still assigned (see _commit_when_due)."""
        self._uncommitted.update({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self._done.items()})
        assigned = self._consumer.assignment()
        offsets = {tp: meta for tp, meta in self._uncommitted.items() if tp in assigned}
        self._done = {}
        self._uncommitted.clear()
        if not offsets:
            return
        try:
            self._consumer.commit(offsets, timeout_ms=CLOSING_COMMIT_TIMEOUT_MS)
        except Exception as exc:
            _log_commit_failure(len(offsets), exc)

    def _process_with_retries(self, message, stop: threading.Event, first_attempt: int = 1) -> bool:
        """True when the message is done with (applied, duplicate or dead-lettered), each
        attempt in a transaction of its own."""
        delivery = _delivery(message)
        try:
            event = envelope.decode(message.value)
        except envelope.InvalidEvent as exc:
            return self._dead_letter(message, exc, stop)
        for attempt in range(first_attempt, MAX_ATTEMPTS + 1):
            if attempt > 1:
                time.sleep(0.2 * (attempt - 1))
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
                self._log_failure(event, attempt, exc)
                if attempt == MAX_ATTEMPTS:
                    return self._dead_letter(message, exc, stop)
        return False

    def _log_failure(self, event: dict, attempt: int, exc: Exception) -> None:
        fields = {"event_id": event.get("id"), "attempt": attempt, "error": safe_error_text(exc)}
        if isinstance(exc, psycopg.Error):
            # No traceback: a constraint's DETAIL quotes the row's values (a duplicate
            # patient MRN, say), and logs hold no patient data.
            log.warning("event handler failed", extra=fields)
        else:  # a bug: its frames (the logging filter strips the exception's text)
            log.warning("event handler failed", exc_info=(type(exc), exc, exc.__traceback__), extra=fields)

    def _apply(self, event: dict, delivery: Delivery) -> str:
        """One event in a transaction of its own (a retry, and tests that choose the order)."""
        handler = self.handlers[delivery.topic]
        with self.pool.connection() as conn:
            with conn.transaction():
                if not self._insert_inbox_row(conn, event, delivery):
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
        close_refused_sockets()
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
