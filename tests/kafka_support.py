"""What tests read back from Kafka: a topic from its first offset to its end as it is now,
with the services' own reader (services/common/kafka_io.read_to_end)."""
from __future__ import annotations

from collections.abc import Collection

from kafka import KafkaConsumer, TopicPartition

from services.common.kafka_io import read_to_end


def read_topic(bootstrap: str, topic: str, keys: Collection[str] | None = None, timeout: float = 60.0,
               client_id: str = "test-reader") -> list:
    """Every message on `topic` now (to the end offsets at the start), in offset order;
    only those whose key is one of `keys` when given. AssertionError if the end is not
    reached within `timeout` seconds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id=client_id, request_timeout_ms=15000)
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
