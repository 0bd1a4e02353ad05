"""What tests read back from Kafka: a topic from its first offset to its end as it is now,
with the services' own reader (services/common/kafka_io.read_to_end); and how tests' own
clients authenticate to the brokers the tests started (SASL/SCRAM as clinic-admin, the
admin principal: tests read every topic and write wherever they inject events)."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from services.common.kafka_io import read_to_end


# bootstrap -> the admin principal's client settings, for each broker this process started
# (the `kafka` fixture, a live stack, a test's private broker): tests' own clients name only
# the bootstrap, and each broker has random passwords of its own.
_ADMIN_SECURITY: dict[str, dict[str, Any]] = {}


def remember_admin(bootstrap: str, security: Mapping[str, Any]) -> None:
    """Record how tests authenticate to the broker at `bootstrap` (as clinic-admin)."""
    _ADMIN_SECURITY[bootstrap] = dict(security)


def admin_security(bootstrap: str) -> dict[str, Any]:
    """kafka-python settings for a test's own client of that broker ({}: PLAINTEXT, for a
    broker the tests did not start)."""
    return dict(_ADMIN_SECURITY.get(bootstrap, {}))


def read_topic(bootstrap: str, topic: str, keys: Collection[str] | None = None, timeout: float = 60.0,
               client_id: str = "test-reader", security: Mapping[str, Any] | None = None) -> list:
    """Every message on `topic` now (to the end offsets at the start), in offset order;
    only those whose key is one of `keys` when given. AssertionError if the end is not
    reached within `timeout` seconds. As clinic-admin unless `security` says otherwise."""
    security = admin_security(bootstrap) if security is None else security
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id=client_id, request_timeout_ms=15000, **security)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        try:
            found, _end = read_to_end(consumer, consumer.beginning_offsets(partitions), timeout)
        except TimeoutError as exc:
            raise AssertionError(str(exc)) from None
    finally:
        consumer.close()
    if keys is not None:
        found = [m for m in found if m.key and m.key.decode() in keys]
    return sorted(found, key=lambda m: (m.partition, m.offset))
