"""Kafka clients configured for what the services need (kafka-python 3.x)."""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from .kafka_sockets import close_refused_sockets
from .settings import Settings

# Explicit, because kafka-python 3 defaults to 45 s: a killed worker's partitions move to
# the survivors within ~10 s, while a heartbeat every 3 s keeps healthy members in.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 3_000

# kafka-python warns on every SCRAM connection without TLS ("exchanging credentials in the
# clear"), but SCRAM never sends the password, only a proof of it, and the broker is reached
# on loopback or a private network (README, "Broker security"): noise in every worker log.
logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)

# The client listener's SASL mechanism (infra/kafka/server.properties). SASL_PLAINTEXT: the
# broker is reached on loopback (make run, tests) or a private container network (compose).
SASL_MECHANISM = "SCRAM-SHA-512"


# A diagnostic knob: CLINIC_KAFKA_CLIENT_LOG=DEBUG shows kafka-python's own narration
# (coordinator, metadata, connections) in the process's log, which logs.py keeps at WARNING.
CLIENT_LOG_SETTING = "CLINIC_KAFKA_CLIENT_LOG"


def _prepare_clients() -> None:
    """Before a client is made: the socket fix (kafka_sockets.py) and the client log level."""
    close_refused_sockets()
    level = os.environ.get(CLIENT_LOG_SETTING, "").strip().upper()
    if level:
        logging.getLogger("kafka").setLevel(level)


def sasl_config(username: str, password: str) -> dict[str, Any]:
    """kafka-python client settings that authenticate as `username` with SCRAM-SHA-512."""
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": SASL_MECHANISM,
            "sasl_plain_username": username, "sasl_plain_password": password}


def client_security(settings: Settings, principal: str | None = None) -> dict[str, Any]:
    """The one place every Kafka client (producer, consumer, admin) gets its security settings:
    SASL/SCRAM as this process's principal (or as `principal`, e.g. clinic-admin for the admin
    tools), with the password the settings found; {} (PLAINTEXT, a broker without SASL) when
    none is configured."""
    if principal is None or principal == settings.kafka_username:
        username, password = settings.kafka_username, settings.kafka_password
    else:
        username, password = principal, settings.kafka_passwords.get(principal)
    return sasl_config(username, password) if username and password else {}


def make_producer(bootstrap: str, client_id: str, security: Mapping[str, Any] | None = None,
                  linger_ms: int = 5) -> KafkaProducer:
    """`linger_ms`: how long a batch may wait for more records before it is sent; a caller
    that flushes after its sends (the relay) may give a long one."""
    _prepare_clients()
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,  # broker drops retried duplicates within a session
        linger_ms=linger_ms,
        # The relay sends up to 500 events and flushes: in batches of 16 KB (the default) a
        # third of its time went to waking the sender thread for each new batch (issue 15).
        batch_size=256 * 1024,
        retries=2_147_483_647,
        delivery_timeout_ms=30_000,
        request_timeout_ms=10_000,
        max_block_ms=10_000,  # send() gives up quickly when the broker is down; the relay retries
        reconnect_backoff_max_ms=2_000,
        **(security or {}),
    )


def make_consumer(bootstrap: str, group_id: str, topics: list[str], client_id: str,
                  security: Mapping[str, Any] | None = None) -> KafkaConsumer:
    _prepare_clients()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,  # offsets are committed only after the database commit
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,  # low latency at low load (fetch_min_bytes stays 1: no waiting for more)
        # A backlog drains in polls of up to 500, each applied in one transaction (inbox.py).
        max_poll_records=500,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        max_poll_interval_ms=300_000,
        reconnect_backoff_max_ms=2_000,
        **(security or {}),
    )
    consumer.subscribe(topics)
    return consumer


def read_to_end(consumer: KafkaConsumer, start: dict[TopicPartition, int | None],
                timeout_s: float) -> tuple[list, dict[TopicPartition, int]]:
    """The records of the consumer's assigned partitions from `start` (None: the end) up to
    their end offsets as they are now, in fetch order; (records, end offsets). TimeoutError
    if the end is not reached within timeout_s."""
    partitions = list(start)
    end = consumer.end_offsets(partitions)
    for tp in partitions:
        consumer.seek(tp, end[tp] if start[tp] is None else start[tp])
    found = []
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(tp) < end[tp] for tp in partitions):
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {', '.join(sorted({tp.topic for tp in partitions}))} "
                               f"to its end within {timeout_s:g} s")
        for tp, records in consumer.poll(timeout_ms=500).items():
            found += [r for r in records if r.offset < end[tp]]
    return found, end
