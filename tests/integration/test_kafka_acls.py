"""Who may do what on the broker (SASL/SCRAM-SHA-512 + StandardAuthorizer, the ACLs of
services/admin/topics.py), tried on the real broker of the `kafka` fixture as each service's
own principal; and the topics' retention as the broker reports it.

Run with `-s` to see the matrix and the topic configs."""
from __future__ import annotations

import logging
import re
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (GroupAuthorizationFailedError, KafkaError,
                          TopicAuthorizationFailedError)

from services.admin.topics import (ALL_TOPICS, CONSUMES, PUBLISHES, Retention, admin_client, ensure_acls,
                                   topic_configs)
from services.common.kafka_io import sasl_config
from services.common.settings import SERVICES, dlq_topic
from services.intake import worker as intake_worker
from services.referral import worker as referral_worker
from services.triage import worker as triage_worker
from services.triage.domain import default_rules_path, load_rules
from services.triage.translations import load_catalogues

pytestmark = pytest.mark.integration

ALLOW, DENY = "allow", "DENY"
OTHER = {"intake": "triage", "triage": "referral", "referral": "intake"}
# A topic each service does not consume (and so may not read): another's where there is one.
NOT_CONSUMED = {"intake": "clinic.symptom-reports.v1",  # its own: intake consumes both others
                "triage": "clinic.referral-events.v1", "referral": "clinic.symptom-reports.v1"}

# The expected answer of every cell: service principal x action.
COLUMNS = ("write own topic", "write another's topic", "write .dlq of consumed", "read consumed topic",
           "read not consumed", "read .dlq of consumed", "join own group", "join another's group")
EXPECTED = {service: dict(zip(COLUMNS, (ALLOW, DENY, ALLOW, ALLOW, DENY, ALLOW, ALLOW, DENY)))
            for service in SERVICES}


def _producer(bootstrap: str, security: dict) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, client_id=f"acl-test-{uuid.uuid4().hex[:6]}", acks="all",
                         enable_idempotence=True, max_block_ms=10_000, request_timeout_ms=10_000,
                         delivery_timeout_ms=15_000, **security)


def try_write(bootstrap: str, security: dict, topic: str) -> str:
    producer = _producer(bootstrap, security)
    try:
        producer.send(topic, key=b"acl-test", value=b"{}").get(timeout=20)
        return ALLOW
    except TopicAuthorizationFailedError:
        return DENY
    finally:
        producer.close(timeout=5)


def try_read(bootstrap: str, security: dict, topic: str, offset: int) -> str:
    """Fetch (READ on the topic) the record at `offset` of partition 0, without a group.
    Refused either way the broker refuses: the metadata of a topic the principal may not even
    DESCRIBE, or the Fetch of one it may describe (its own, through WRITE) but not read."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="acl-test-reader", request_timeout_ms=10_000, fetch_max_wait_ms=100,
                             **security)
    tp = TopicPartition(topic, 0)
    try:
        consumer.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(r.offset == offset for r in consumer.poll(timeout_ms=300).get(tp, [])):
                return ALLOW
            if topic in consumer._client.cluster.unauthorized_topics:  # the metadata answer
                return DENY
        raise AssertionError(f"{topic} neither read nor refused within 30 s")
    except TopicAuthorizationFailedError:  # the Fetch answer
        return DENY
    finally:
        consumer.close(autocommit=False)


def marker(kafka, topic: str) -> int:
    """A record written (as clinic-admin) to partition 0 of `topic`; its offset."""
    producer = _producer(kafka.bootstrap, kafka.client_security())
    try:
        return producer.send(topic, key=b"acl-test", value=b"{}", partition=0).get(timeout=20).offset
    finally:
        producer.close(timeout=5)


def try_join(bootstrap: str, security: dict, group: str, topic: str) -> str:
    """Join `group` subscribed to a topic the principal may read, until partitions are assigned."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                             client_id="acl-test-member", session_timeout_ms=10_000, heartbeat_interval_ms=3_000,
                             request_timeout_ms=15_000, fetch_max_wait_ms=100, **security)
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            consumer.poll(timeout_ms=300)
            if consumer.assignment():
                return ALLOW
        raise AssertionError(f"neither joined nor refused group {group} within 30 s")
    except GroupAuthorizationFailedError:
        return DENY
    finally:
        consumer.close(autocommit=False)


def cells(kafka, service: str) -> dict[str, str]:
    bootstrap, security = kafka.bootstrap, kafka.client_security(service)
    consumed = CONSUMES[service][0]
    suffix = uuid.uuid4().hex[:8]

    def read(topic: str) -> str:
        return try_read(bootstrap, security, topic, marker(kafka, topic))

    return {
        "write own topic": try_write(bootstrap, security, PUBLISHES[service][0]),
        "write another's topic": try_write(bootstrap, security, PUBLISHES[OTHER[service]][0]),
        "write .dlq of consumed": try_write(bootstrap, security, dlq_topic(consumed)),
        "read consumed topic": read(consumed),
        "read not consumed": read(NOT_CONSUMED[service]),
        "read .dlq of consumed": read(dlq_topic(consumed)),
        "join own group": try_join(bootstrap, security, f"clinic-{service}-acl-test-{suffix}", consumed),
        "join another's group": try_join(bootstrap, security, f"clinic-{OTHER[service]}-acl-test-{suffix}",
                                         consumed),
    }


def render(matrix: dict[str, dict[str, str]]) -> str:
    width = max(map(len, COLUMNS))
    lines = [f"{'':<{width}}  " + "  ".join(f"{s:<8}" for s in SERVICES)]
    lines += [f"{column:<{width}}  " + "  ".join(f"{matrix[s][column]:<8}" for s in SERVICES) for column in COLUMNS]
    return "\n".join(lines)


def test_the_acl_table_matches_what_each_worker_consumes():
    rules = load_rules(default_rules_path())
    assert set(CONSUMES["intake"]) == set(intake_worker.HANDLERS)
    assert set(CONSUMES["triage"]) == set(triage_worker.handlers(rules, load_catalogues()))
    # The referral worker builds its handlers inside main(): the topics its module knows.
    assert set(CONSUMES["referral"]) == {v for k, v in vars(referral_worker).items() if k.startswith("TOPIC_")}
    for service in SERVICES:
        assert NOT_CONSUMED[service] not in CONSUMES[service]


def test_each_service_principal_may_do_what_its_acls_allow_and_nothing_else(kafka):
    matrix = {service: cells(kafka, service) for service in SERVICES}
    print("\nKafka ACL matrix (SASL/SCRAM principal x action, on the real broker):\n" + render(matrix))
    assert matrix == EXPECTED


def test_ensure_acls_again_changes_nothing(kafka):
    assert ensure_acls(kafka.bootstrap, kafka.client_security()) == {"created": 0, "deleted": 0}


def refusal(bootstrap: str, security: dict, caplog) -> str | None:
    """None if an admin client with these settings can list the topics; else why not (the
    exception, and the connection errors kafka-python logged while it tried)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafka"):
        try:
            with admin_client(bootstrap, security, bootstrap_timeout_ms=5_000, request_timeout_ms=5_000) as admin:
                admin.list_topics()
            return None
        except KafkaError as exc:
            reasons = sorted({match for r in caplog.records
                              for match in re.findall(r"SaslAuthenticationFailedError|socket disconnected",
                                                      r.getMessage())})
            return f"{type(exc).__name__}: {exc} (connections: {', '.join(reasons) or '-'})"


def test_an_unauthenticated_client_is_refused(kafka, caplog):
    # A PLAINTEXT client on the SASL listener: before authenticating, the broker answers only
    # ApiVersions and SaslHandshake, and closes the connection on anything else.
    why = refusal(kafka.bootstrap, {}, caplog)
    print(f"\nunauthenticated client: refused: {why}")
    assert why is not None and "socket disconnected" in why
    assert refusal(kafka.bootstrap, kafka.client_security(), caplog) is None  # the control


def test_a_wrong_password_is_refused(kafka, caplog):
    right = kafka.client_security("triage")
    why = refusal(kafka.bootstrap, sasl_config("triage", right["sasl_plain_password"] + "x"), caplog)
    print(f"\nwrong password: refused: {why}")
    assert why is not None
    assert refusal(kafka.bootstrap, right, caplog) is None  # the same principal, its own password


def test_every_topic_has_its_retention_as_the_broker_reports_it(kafka):
    with kafka.admin() as admin:
        configs = topic_configs(admin, ALL_TOPICS)
    print("\ntopic configs as the broker reports them (retention.ms, cleanup.policy, partitions' own):")
    for name in ALL_TOPICS:
        shown = {key: configs[name][key] for key in ("retention.ms", "cleanup.policy", "retention.bytes",
                                                     "min.insync.replicas")}
        print(f"  {name:<34} {shown}")
    assert {name: configs[name]["retention.ms"] for name in ALL_TOPICS} == {
        name: str((14 if name.endswith(".dlq") else 7) * 24 * 3600 * 1000) for name in ALL_TOPICS}
    assert all(configs[name]["retention.ms"] == str(Retention().ms(name)) for name in ALL_TOPICS)


def test_the_topic_creator_sets_retention_on_topics_that_exist_with_another(kafka):
    names = [f"clinic.retention-test-{uuid.uuid4().hex[:6]}.v1"]
    names.append(dlq_topic(names[0]))
    kafka.ensure_topics(names, partitions=1, retention=Retention(topic_days=1, dlq_days=2))
    kafka.ensure_topics(names, partitions=1, retention=Retention(topic_days=3, dlq_days=5))  # altered
    with kafka.admin() as admin:
        found = {name: c["retention.ms"] for name, c in topic_configs(admin, names, ["retention.ms"]).items()}
    assert found == {names[0]: str(3 * 86_400_000), names[1]: str(5 * 86_400_000)}
