"""What the suite asks Kafka: consumer groups (members, assignment), lag, dead-letter topics;
and the poison it injects."""
from __future__ import annotations

import contextlib
import json
import logging
import socket
import uuid
import warnings
from dataclasses import dataclass

with warnings.catch_warnings():  # kafka-python 3.0.12 imports a deprecated importlib API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec

from services.admin.topics import CONSUMES, consumer_group_prefix
from services.common import envelope
from services.common.kafka_io import make_producer
from services.common.settings import (TOPIC_DECISIONS, TOPIC_PATIENT_MESSAGES, TOPIC_REFERRAL_EVENTS, TOPIC_REPORTS,
                                      TOPICS, dlq_topic)
from tests.kafka_support import admin_security, read_topic

PARTITIONS = 6
# consumer group -> topics it reads: the ACL table, which a test holds to the workers' handlers
GROUPS = {consumer_group_prefix(service): topics for service, topics in CONSUMES.items()}
CONSUMERS_OF = {topic: tuple(g for g, topics in GROUPS.items() if topic in topics) for topic in TOPICS}

logging.getLogger("kafka").setLevel(logging.CRITICAL)  # a broker down on purpose is no news


class BrokerUnreachable(Exception):
    pass


def _port_open(bootstrap: str) -> bool:
    """Any of the brokers (CLINIC_KAFKA_BROKERS=3: a comma-separated list) listens."""
    for address in bootstrap.split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return True
        except OSError:
            continue
    return False


@contextlib.contextmanager
def admin(bootstrap: str, timeout_ms: int = 5000):
    # Not even tried while nothing listens: a client would spend its whole bootstrap timeout.
    if not _port_open(bootstrap):
        raise BrokerUnreachable(bootstrap)
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="chaos-probe",
                              request_timeout_ms=timeout_ms, bootstrap_timeout_ms=timeout_ms,
                              **admin_security(bootstrap))
    try:
        yield client
    finally:
        client.close()


@dataclass(frozen=True)
class GroupState:
    group: str
    state: str
    members: int
    assigned: dict[str, list[tuple[str, int]]]  # member id -> partitions

    @property
    def fully_assigned(self) -> bool:
        want = {(t, p) for t in GROUPS[self.group] for p in range(PARTITIONS)}
        got = [tp for parts in self.assigned.values() for tp in parts]
        return sorted(got) == sorted(want)


def describe_groups(bootstrap: str) -> dict[str, GroupState]:
    with admin(bootstrap) as client:
        described = client.describe_groups(list(GROUPS))
    states = {}
    for group, info in described.items():
        assigned = {}
        for member in info.get("members", []):
            parts = []
            assignment = member.get("member_assignment") or {}
            if isinstance(assignment, dict):
                for item in assignment.get("assigned_partitions", []):
                    parts += [(item["topic"], p) for p in item["partitions"]]
            assigned[member["member_id"]] = parts
        states[group] = GroupState(group, info.get("group_state", "?"), len(assigned), assigned)
    return states


def lag(bootstrap: str) -> dict[str, int]:
    """Per group: sum over its partitions of (log end offset - committed offset)."""
    with admin(bootstrap) as client:
        committed = client.list_group_offsets(list(GROUPS))
        tps = [TopicPartition(t, p) for t in TOPICS for p in range(PARTITIONS)]
        ends = client.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        starts = client.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
    result = {}
    for group, topics in GROUPS.items():
        total = 0
        for topic in topics:
            for p in range(PARTITIONS):
                tp = TopicPartition(topic, p)
                done = committed.get(group, {}).get(tp)
                position = done.offset if done is not None and done.offset >= 0 else starts[tp].offset
                total += max(0, ends[tp].offset - position)
        result[group] = total
    return result


def committed_offsets(bootstrap: str) -> dict[str, dict[tuple[str, int], int]]:
    with admin(bootstrap) as client:
        committed = client.list_group_offsets(list(GROUPS))
    return {g: {(tp.topic, tp.partition): o.offset for tp, o in offsets.items()} for g, offsets in committed.items()}


def broker_ready(bootstrap: str) -> bool:
    try:
        with admin(bootstrap, timeout_ms=2000) as client:
            client.list_topics()
        return True
    except Exception:
        return False


# -- dead-letter topics ------------------------------------------------------------------
@dataclass(frozen=True)
class Parked:
    dlq: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def group(self) -> str | None:
        return self.headers.get("dlq.consumer_group")

    @property
    def origin(self) -> tuple[str | None, str | None, str | None]:
        return (self.headers.get("dlq.original_topic"), self.headers.get("dlq.original_partition"),
                self.headers.get("dlq.original_offset"))


def read_dlq(bootstrap: str, topic: str) -> list[Parked]:
    parked = []
    for m in read_topic(bootstrap, dlq_topic(topic), client_id="chaos-reader"):
        headers = {k: (v or b"").decode(errors="replace") for k, v in (m.headers or [])}
        parked.append(Parked(dlq_topic(topic), m.partition, m.offset, m.key.decode(errors="replace") if m.key else None,
                             m.value, headers))
    return parked


# -- poison ------------------------------------------------------------------------------
POISON_KINDS = ("not_json", "not_cloudevent", "bad_data")


def poison_value(topic: str, kind: str, key: str) -> bytes:
    if kind == "not_json":
        return b"\xff{this is not json"
    if kind == "not_cloudevent":
        return json.dumps({"hello": "world", "key": key}).encode()
    # A well-formed CloudEvent whose data no consumer of the topic can apply.
    types = {TOPIC_REPORTS: "clinic.report.submitted", TOPIC_DECISIONS: "clinic.triage.decided",
             TOPIC_REFERRAL_EVENTS: "referral.booked", TOPIC_PATIENT_MESSAGES: "clinic.patient.message"}
    data = {"report_id": "not-a-uuid", "care_level": "bogus", "note": "chaos poison"}
    event = envelope.new_event(type=types[topic], source="/chaos", subject=key, data=data)
    return envelope.encode(event)


@dataclass(frozen=True)
class Poison:
    topic: str
    kind: str
    key: str


def inject_poison(bootstrap: str, run_id: str, label: str) -> list[Poison]:
    """One message of each kind on each topic; keys say what they are."""
    producer = make_producer(bootstrap, "chaos-poison", admin_security(bootstrap))
    injected = []
    try:
        for topic in TOPICS:
            for kind in POISON_KINDS:
                key = f"chaos-poison-{run_id}-{label}-{kind}-{uuid.uuid4().hex[:6]}"
                producer.send(topic, key=key.encode(), value=poison_value(topic, kind, key),
                              headers=[("traceparent", envelope.new_traceparent().encode())]).get(timeout=30)
                injected.append(Poison(topic, kind, key))
    finally:
        producer.close(timeout=5)
    return injected
