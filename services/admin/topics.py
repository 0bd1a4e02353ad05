"""The Kafka topics (`clinic kafka topics`, compose's one-shot, and the local runner):
each of the three topics and its dead-letter twin, made on any broker if missing."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.common.settings import TOPICS, dlq_topic

log = logging.getLogger(__name__)

PARTITIONS = 6
# Every topic the services use, each followed by its dead-letter topic.
ALL_TOPICS = tuple(name for topic in TOPICS for name in (topic, dlq_topic(topic)))


class TopicError(RuntimeError):
    """Topics could not be made; a one-line message."""


@contextlib.contextmanager
def admin_client(bootstrap: str, **configs) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clinic-admin", **configs)
    try:
        yield client
    finally:
        client.close()


def ensure_topics(bootstrap: str, names: tuple[str, ...] | list[str] = ALL_TOPICS,
                  partitions: int = PARTITIONS) -> None:
    """Create whichever of names do not exist yet, then wait until they all have leaders."""
    try:
        with admin_client(bootstrap) as admin:
            missing = sorted(set(names) - set(admin.list_topics()))
            if missing:
                spec = {name: {"num_partitions": partitions, "replication_factor": 1} for name in missing}
                _raise_topic_errors(admin.create_topics(spec, raise_errors=False))
                log.info("created Kafka topics: %s", ", ".join(missing))
            admin.wait_for_topics(list(names), timeout_ms=30_000)
    except KafkaError as exc:
        raise TopicError(f"creating Kafka topics on {bootstrap} failed: {exc}") from exc


def _raise_topic_errors(response: dict) -> None:
    for topic in response.get("topics", []):
        code = topic.get("error_code", 0)
        if code in (0, TopicAlreadyExistsError.errno):  # a concurrent creator won the race
            continue
        message = topic.get("error_message") or f"error code {code}"
        raise TopicError(f"creating Kafka topic {topic.get('name')!r} failed: {message}")
