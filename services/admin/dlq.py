"""`clinic dlq list TOPIC` and `clinic dlq replay TOPIC`: the dead-letter topics, for operators.

A consumer that gives up on a message parks it, as received (key, value, headers), in
`<topic>.dlq` with `dlq.*` headers saying why (services/common/inbox.py). Once the cause
is fixed (a consumer bug, a producer's bad data corrected upstream), `replay` sends the
parked messages back to the topic they came from:

- at least once, never "again next time": the replay reads the .dlq topic as consumer
  group `clinic-dlq-replay` and commits its offsets once the original topic has acked
  what it sent, so a second `replay` only sends what was parked since;
- without duplicating effects: an event that was applied after all (or is sent twice by
  a replay that crashed before its commit) is skipped by the consumers' inbox (its event
  id), and a message parked twice (by two consumer groups of one topic, or in the narrow
  window where the dead-letter marker could not be committed) is sent back once per run;
- a replayed message that fails again is parked again, as a new dead letter.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime

from services.common.kafka_io import client_security, make_producer, read_to_end
from services.common.kafka_sockets import close_refused_sockets
from services.common.settings import KAFKA_ADMIN_PRINCIPAL, TOPICS, Settings, dlq_topic

from .errors import CommandError

with warnings.catch_warnings():  # kafka-python 3.0.12 imports a deprecated importlib API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

REPLAY_GROUP = "clinic-dlq-replay"
REPLAYED_FROM = "dlq.replayed_from"
READ_TIMEOUT_S = 60.0


class DlqError(CommandError):
    """A one-line message for the operator."""


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        found = None
        for key, value in self.headers:
            if key == name and value is not None:
                found = value.decode(errors="replace")
        return found

    @property
    def origin(self) -> tuple[str, str | None, str | None]:
        return (self.header("dlq.original_topic") or "", self.header("dlq.original_partition"),
                self.header("dlq.original_offset"))

    @property
    def failed_at(self) -> str:
        return self.header("dlq.failed_at") or datetime.fromtimestamp(self.timestamp_ms / 1000).astimezone().isoformat()


def resolve_topic(name: str) -> tuple[str, str]:
    """(original topic, dead-letter topic) from either name."""
    original = name.removesuffix(".dlq")
    if original not in TOPICS:
        raise DlqError(f"unknown topic {name!r}; one of: {', '.join(TOPICS)} (or the same with .dlq)")
    return original, dlq_topic(original)


def _consumer(bootstrap: str, group_id: str | None, security: dict | None = None) -> KafkaConsumer:
    close_refused_sockets()
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, client_id="clinic-dlq",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             request_timeout_ms=15_000, reconnect_backoff_max_ms=2_000, **(security or {}))
    except KafkaError as exc:
        raise DlqError(f"cannot reach Kafka at {bootstrap} ({type(exc).__name__}); is the stack running?") from None


def _read(consumer: KafkaConsumer, start: dict[TopicPartition, int]) -> tuple[list[DeadLetter], dict]:
    """Messages from `start` to the end offsets as they are now, oldest first; (messages, end offsets)."""
    try:
        records, end = read_to_end(consumer, start, READ_TIMEOUT_S)
    except TimeoutError as exc:
        raise DlqError(str(exc)) from None
    found = [DeadLetter(m.partition, m.offset, m.key.decode(errors="replace") if m.key else None,
                        m.value, list(m.headers or []), m.timestamp) for m in records]
    found.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return found, end


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise DlqError(f"topic {topic} does not exist (create the topics: clinic kafka topics)")
    partitions = [TopicPartition(topic, p) for p in sorted(ids)]
    consumer.assign(partitions)
    return partitions


def _replayed_up_to(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    beginning = consumer.beginning_offsets(partitions)
    result = {}
    for tp in partitions:
        committed = consumer.committed(tp)
        result[tp] = max(committed if committed is not None else 0, beginning[tp])
    return result


def run(settings: Settings, action: str, topic: str, *, dry_run: bool = False) -> None:
    """`clinic dlq list|replay TOPIC`: prints the list or what the replay sent."""
    import logging

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our own one-line errors say it
    security = client_security(settings, KAFKA_ADMIN_PRINCIPAL)  # an operator's tool: the admin principal
    if action == "list":
        letters, replayed = list_dead_letters(settings.kafka_bootstrap, topic, security=security)
        print(render_list(topic, letters, replayed))
    else:
        print(render_replay(replay(settings.kafka_bootstrap, topic, dry_run=dry_run, security=security),
                            dry_run=dry_run))


# -- list ------------------------------------------------------------------------------
def list_dead_letters(bootstrap: str, name: str, *, security: dict | None = None
                      ) -> tuple[list[DeadLetter], dict[int, int]]:
    """Every message parked in the topic's .dlq, oldest first, and per partition the offset
    up to which `replay` has sent them back."""
    _original, topic = resolve_topic(name)
    consumer = _consumer(bootstrap, REPLAY_GROUP, security)  # only to read its committed offsets
    try:
        partitions = _partitions(consumer, topic)
        replayed = _replayed_up_to(consumer, partitions)
        letters, _end = _read(consumer, consumer.beginning_offsets(partitions))
    finally:
        consumer.close(autocommit=False)
    return letters, {tp.partition: offset for tp, offset in replayed.items()}


def render_list(name: str, letters: list[DeadLetter], replayed: dict[int, int]) -> str:
    _original, topic = resolve_topic(name)
    if not letters:
        return f"{topic}: no dead letters"
    waiting = sum(1 for d in letters if d.offset >= replayed.get(d.partition, 0))
    lines = [f"{topic}: {len(letters)} dead letter(s), {waiting} not replayed",
             f"{'partition/offset':<17} {'failed at':<33} {'group':<16} {'from':<12} {'replayed':<8} key / error"]
    for d in letters:
        origin_topic, origin_partition, origin_offset = d.origin
        origin = f"{origin_partition}/{origin_offset}" if origin_partition is not None else "?"
        done = "yes" if d.offset < replayed.get(d.partition, 0) else "no"
        error = f"{d.header('dlq.error_type') or '?'}: {d.header('dlq.error') or '(no error header)'}"
        lines.append(f"{f'{d.partition}/{d.offset}':<17} {d.failed_at:<33} {d.header('dlq.consumer_group') or '?':<16} "
                     f"{origin:<12} {done:<8} {d.key}")
        lines.append(f"{'':<17} {error[:300]}")
    return "\n".join(lines)


# -- replay ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplayResult:
    topic: str
    sent: int
    duplicates: int       # parked more than once (several groups, or twice): sent once
    already_replayed: int  # before the committed offsets: left alone


def replay(bootstrap: str, name: str, *, dry_run: bool = False, security: dict | None = None) -> ReplayResult:
    original, topic = resolve_topic(name)
    consumer = _consumer(bootstrap, REPLAY_GROUP, security)
    producer = None
    try:
        partitions = _partitions(consumer, topic)
        start = _replayed_up_to(consumer, partitions)
        beginning = consumer.beginning_offsets(partitions)
        letters, end = _read(consumer, start)
        already = sum(start[tp] - beginning[tp] for tp in partitions)
        seen: set[tuple] = set()
        to_send, duplicates = [], 0
        for d in letters:
            origin = d.origin
            # Two groups parking the same message (or one group twice) name the same origin.
            identity = origin if origin[1] is not None else ("dlq", d.partition, d.offset)
            if identity in seen:
                duplicates += 1
                continue
            seen.add(identity)
            to_send.append(d)
        if dry_run:
            return ReplayResult(topic, len(to_send), duplicates, already)
        if to_send:
            producer = make_producer(bootstrap, "clinic-dlq-replay", security)
            futures = []
            for d in to_send:
                target = d.origin[0] or original
                if target not in TOPICS:
                    target = original
                headers = [(k, v) for k, v in d.headers if not k.startswith("dlq.")]
                headers.append((REPLAYED_FROM, f"{topic}/{d.partition}/{d.offset}".encode()))
                futures.append(producer.send(target, key=d.key.encode() if d.key is not None else None,
                                             value=d.value, headers=headers))
            producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=60)  # all acked, or nothing is committed (and all is sent again)
        # Every partition's end as read: what was sent, and the duplicates left out.
        consumer.commit({tp: OffsetAndMetadata(end[tp], "", -1) for tp in partitions if end[tp] > start[tp]})
        return ReplayResult(topic, len(to_send), duplicates, already)
    except KafkaError as exc:
        raise DlqError(f"replay of {topic} failed ({type(exc).__name__}: {exc}); nothing was committed, "
                       "so running it again sends what was not acknowledged (consumers skip what they "
                       "already applied)") from None
    finally:
        if producer is not None:
            producer.close(timeout=10)
        consumer.close(autocommit=False)


def render_replay(result: ReplayResult, dry_run: bool = False) -> str:
    verb = "would send" if dry_run else "sent"
    original = result.topic.removesuffix(".dlq")
    text = f"{result.topic}: {verb} {result.sent} message(s) back to {original}"
    if result.duplicates:
        text += f"; {result.duplicates} duplicate(s) left out"
    if result.already_replayed:
        text += f"; {result.already_replayed} replayed before"
    return text

