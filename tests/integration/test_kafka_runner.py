"""A real single-node Kafka broker started by infra/kafka/runner.py.

The broker's config, data and log live in a temp state dir, on free ports. Its
jars come from the shared cache, $CLINIC_KAFKA_LIB_DIR or else
`<CLINIC_STATE_DIR or repo/.state>/kafka/lib` (passed as LocalKafka's `lib_dir`):
reused when `make run` or an earlier test run already fetched them, fetched
there once otherwise.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafka import KafkaConsumer, KafkaProducer

from infra.kafka import runner
from infra.kafka.runner import LocalKafka
from services.admin.topics import ALL_TOPICS
from infra.postgres import InfraError
from services.common import settings

pytestmark = pytest.mark.integration


def _free_ports(count: int) -> list[int]:
    """Distinct ports free right now (all held open while choosing, so no repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.create_server(("127.0.0.1", 0))) for _ in range(count)]
        return [s.getsockname()[1] for s in socks]


def _shared_lib_dir() -> Path:
    """The jar cache `make run` uses, so tests neither refetch nor copy the jars."""
    return Path(os.environ.get("CLINIC_KAFKA_LIB_DIR") or settings.load().state_dir / "kafka" / "lib")


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[LocalKafka]:
    port, controller_port = _free_ports(2)
    broker = LocalKafka(tmp_path_factory.mktemp("kafka-state"), port=port,
                        controller_port=controller_port,
                        lib_dir=_shared_lib_dir())
    with broker.running(ready_timeout=120):
        yield broker


def test_topics_are_the_four_streams_and_their_dead_letter_topics():
    assert list(ALL_TOPICS) == [
        "clinic.symptom-reports.v1", "clinic.symptom-reports.v1.dlq",
        "clinic.triage-decisions.v1", "clinic.triage-decisions.v1.dlq",
        "clinic.referral-events.v1", "clinic.referral-events.v1.dlq",
        "clinic.patient-messages.v1", "clinic.patient-messages.v1.dlq",
    ]


def test_ensure_topics_creates_six_partitions_and_is_idempotent(broker):
    broker.ensure_topics(ALL_TOPICS)  # second call: all exist already
    broker.ensure_topics(["clinic.test-extra.v1"], partitions=2)
    with broker.admin() as admin:
        described = {t["name"]: t for t in admin.describe_topics([*ALL_TOPICS, "clinic.test-extra.v1"])}
    assert {name: len(described[name]["partitions"]) for name in ALL_TOPICS} == {name: 6 for name in ALL_TOPICS}
    assert len(described["clinic.test-extra.v1"]["partitions"]) == 2


def test_idempotent_producer_and_manual_commit_consumer_round_trip(broker):
    topic = ALL_TOPICS[0]
    key = str(uuid.uuid4()).encode()
    headers = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                             **broker.client_security())
    try:
        sent = producer.send(topic, key=key, value=b'{"hello": "kafka"}', headers=headers).get(timeout=30)
    finally:
        producer.close(timeout=10)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=f"test-{uuid.uuid4()}",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             fetch_max_wait_ms=100, session_timeout_ms=10_000,
                             heartbeat_interval_ms=3_000, **broker.client_security())
    try:
        consumer.subscribe([topic])
        record = _poll_for_key(consumer, key, timeout=60)
        consumer.commit()
        committed = consumer.committed(sent.topic_partition)
    finally:
        consumer.close()

    assert (record.partition, record.offset) == (sent.partition, sent.offset)
    assert record.value == b'{"hello": "kafka"}'
    assert record.headers == headers
    assert committed == sent.offset + 1


def _poll_for_key(consumer: KafkaConsumer, key: bytes, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.key == key:
                    return record
    raise AssertionError(f"no record with key {key!r} within {timeout}s")


def test_ensure_formatted_again_keeps_the_cluster(broker):
    meta = broker.data_dir / "meta.properties"
    before = meta.read_text()
    broker.ensure_formatted()
    assert meta.read_text() == before


def test_ensure_jars_again_uses_the_cache(broker, monkeypatch):
    def no_maven(*args):
        raise AssertionError("jars fetched again although the marker matches the pom")

    monkeypatch.setattr(runner, "_fetch_jars", no_maven)
    broker.ensure_jars()
    assert any(Path(broker.lib_dir).glob("kafka_2.13-*.jar"))


def test_start_on_a_taken_port_is_a_one_line_error(broker):
    with pytest.raises(InfraError, match=rf"port {broker.port} .* already in use") as caught:
        twin = LocalKafka(broker.state_dir, port=broker.port, host=broker.host,
                          controller_port=broker.controller_port, lib_dir=broker.lib_dir)
        twin.start()
    assert "\n" not in str(caught.value)
