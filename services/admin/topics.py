"""The Kafka topics (`clinic kafka topics`, compose's one-shot, and the local runner):
each of the topics and its dead-letter twin, made on any broker if missing, with the
retention the settings ask for (also set on topics that exist with another); and, on a
broker with SASL and an authorizer, each service principal's ACLs.

Replication is the brokers' own defaults (default.replication.factor, min.insync.replicas):
1 and 1 on the single local broker, 3 and 2 on the three-broker cluster (compose's, and
CLINIC_KAFKA_BROKERS=3; docs/kafka-cluster.md), so one command serves both. Unclean leader
election is off on every topic, whatever the broker says."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         ConfigResource, ConfigResourceType, KafkaAdminClient, ResourcePattern,
                         ResourcePatternFilter, ResourceType)
from kafka.errors import KafkaError, TopicAlreadyExistsError

from services.common.kafka_sockets import close_refused_sockets
from services.common.settings import (SERVICES, TOPIC_DECISIONS, TOPIC_PATIENT_MESSAGES, TOPIC_REFERRAL_EVENTS,
                                      TOPIC_REPORTS, TOPICS, Settings, dlq_topic)

log = logging.getLogger(__name__)

PARTITIONS = 6
# Every topic the services use, each followed by its dead-letter topic.
ALL_TOPICS = tuple(name for topic in TOPICS for name in (topic, dlq_topic(topic)))
DAY_MS = 24 * 3600 * 1000
# CreateTopics' "the broker's default.replication.factor".
BROKER_DEFAULT = -1
# An out-of-sync replica never becomes leader: it would drop events already acknowledged.
UNCLEAN_ELECTION = "unclean.leader.election.enable"


class TopicError(RuntimeError):
    """Topics could not be made; a one-line message."""


@dataclass(frozen=True)
class Retention:
    """retention.ms of the topics and of their dead-letter twins.

    A topic is a transport, not the clinic's record (each service keeps what it accepted in
    its own schema): 7 days covers a long weekend of a consumer down plus time to notice,
    after which its events are in the databases. A dead letter waits for a person to fix
    its cause and replay it (`clinic dlq replay`), so it is kept twice as long; after that
    a parked report is dropped rather than kept with its patient data for ever."""
    topic_days: float = 7.0
    dlq_days: float = 14.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(settings.topic_retention_days, settings.dlq_retention_days)

    def ms(self, topic: str) -> int:
        days = self.dlq_days if topic.endswith(".dlq") else self.topic_days
        return int(days * DAY_MS)


@contextlib.contextmanager
def admin_client(bootstrap: str, security: Mapping[str, Any] | None = None, **configs) -> Iterator[KafkaAdminClient]:
    """An admin client; `security`: kafka_io.client_security(settings, KAFKA_ADMIN_PRINCIPAL)."""
    close_refused_sockets()
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="clinic-admin", **(security or {}), **configs)
    try:
        yield client
    finally:
        client.close()


def ensure_topics(bootstrap: str, names: Sequence[str] = ALL_TOPICS, partitions: int = PARTITIONS, *,
                  security: Mapping[str, Any] | None = None, retention: Retention = Retention()) -> None:
    """Create whichever of names do not exist yet, with their retention.ms, unclean leader
    election off and the broker's default replication; set those configs on topics that
    exist with others; then wait until they all have leaders."""
    try:
        with admin_client(bootstrap, security) as admin:
            missing = sorted(set(names) - set(admin.list_topics()))
            if missing:
                spec = {name: {"num_partitions": partitions, "replication_factor": BROKER_DEFAULT,
                               "configs": wanted_configs(name, retention)} for name in missing}
                _raise_topic_errors(admin.create_topics(spec, raise_errors=False))
                log.info("created Kafka topics: %s", ", ".join(missing))
            existing = sorted(set(names) - set(missing))
            if existing:
                _align_configs(admin, existing, retention)
            admin.wait_for_topics(list(names), timeout_ms=30_000)
    except KafkaError as exc:
        raise TopicError(f"creating Kafka topics on {bootstrap} failed: {type(exc).__name__}: {exc}") from exc


def wanted_configs(name: str, retention: Retention) -> dict[str, str]:
    """The topic-level configs every topic gets."""
    return {"retention.ms": str(retention.ms(name)), UNCLEAN_ELECTION: "false"}


def _align_configs(admin: KafkaAdminClient, names: list[str], retention: Retention) -> None:
    """wanted_configs on topics made earlier (by hand, or before a config was set, or with
    other settings): altered, incrementally, where they differ."""
    current = topic_configs(admin, names, list(wanted_configs(names[0], retention)))
    changes = {name: {key: value for key, value in wanted_configs(name, retention).items()
                      if current[name].get(key) != value} for name in names}
    changes = {name: change for name, change in changes.items() if change}
    if not changes:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, name, change) for name, change in changes.items()]
    result = admin.alter_configs(resources, incremental=True)
    failed = {name: outcome for name, outcome in result.get("topic", {}).items() if outcome != "OK"}
    if failed:
        raise TopicError(f"setting topic configs failed: {failed}")
    log.info("set %s on existing Kafka topics: %s", ", ".join(sorted({k for c in changes.values() for k in c})),
             ", ".join(changes))


def topic_configs(admin: KafkaAdminClient, names: Sequence[str], keys: Sequence[str] | None = None
                  ) -> dict[str, dict[str, str]]:
    """{topic: {config: value}} as the broker reports them (all configs, defaults included,
    or only `keys`)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    described = admin.describe_configs(resources, config_filter="all").get("topic", {})
    return {name: {key: entry["value"] for key, entry in described.get(name, {}).items()
                   if keys is None or key in keys}
            for name in names}


def _raise_topic_errors(response: dict) -> None:
    for topic in response.get("topics", []):
        code = topic.get("error_code", 0)
        if code in (0, TopicAlreadyExistsError.errno):  # a concurrent creator won the race
            continue
        message = topic.get("error_message") or f"error code {code}"
        raise TopicError(f"creating Kafka topic {topic.get('name')!r} failed: {message}")


# -- ACLs ---------------------------------------------------------------------------------------
# What each service publishes, and what its worker consumes (services/<svc>/worker.py; a test
# holds this table to the workers' handlers).
PUBLISHES = {"intake": (TOPIC_REPORTS, TOPIC_PATIENT_MESSAGES), "triage": (TOPIC_DECISIONS,),
             "referral": (TOPIC_REFERRAL_EVENTS,)}
CONSUMES = {"intake": (TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS), "triage": (TOPIC_REPORTS,),
            "referral": (TOPIC_DECISIONS, TOPIC_PATIENT_MESSAGES)}


def consumer_group_prefix(service: str) -> str:
    """A service's consumer groups: `clinic-<service>` (production) and `clinic-<service>-...`
    (tests, and any second group an operator needs, e.g. clinic-triage-test-1a2b)."""
    return f"clinic-{service}"


def service_acls(service: str) -> set[ACL]:
    """The ALLOW ACLs of a service's principal, and nothing else (the authorizer denies what
    no ACL allows):

    - WRITE its own topics, and the .dlq twins of what it consumes (its consumer parks there);
    - READ what it consumes, and those .dlq twins (its inbox looks there for a dead letter
      it may have sent already, services/common/inbox.py); READ implies DESCRIBE;
    - IDEMPOTENT_WRITE on the cluster (its producers are idempotent);
    - READ on the groups `clinic-<service>` and `clinic-<service>-*` only.
    """
    principal = f"User:{service}"
    consumed = CONSUMES[service]

    def allow(operation, resource_type, name, pattern=ACLResourcePatternType.LITERAL) -> ACL:
        return ACL(principal, "*", operation, ACLPermissionType.ALLOW, ResourcePattern(resource_type, name, pattern))

    acls = {allow(ACLOperation.WRITE, ResourceType.TOPIC, topic)
            for topic in (*PUBLISHES[service], *map(dlq_topic, consumed))}
    acls |= {allow(ACLOperation.READ, ResourceType.TOPIC, topic)
             for topic in (*consumed, *map(dlq_topic, consumed))}
    acls.add(allow(ACLOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, "kafka-cluster"))
    group = consumer_group_prefix(service)
    acls.add(allow(ACLOperation.READ, ResourceType.GROUP, group))
    acls.add(allow(ACLOperation.READ, ResourceType.GROUP, f"{group}-", ACLResourcePatternType.PREFIXED))
    return acls


def _key(acl: ACL) -> tuple:
    pattern = acl.resource_pattern
    return (acl.principal, acl.host, int(acl.operation), int(acl.permission_type),
            int(pattern.resource_type), pattern.resource_name, int(pattern.pattern_type))


def ensure_acls(bootstrap: str, security: Mapping[str, Any] | None = None,
                services: Sequence[str] = SERVICES) -> dict[str, int]:
    """Each service principal's ACLs exactly as service_acls says: missing ones created, any
    other ACL of that principal deleted; idempotent. {"created": n, "deleted": m}. Needs a
    broker with an authorizer and a principal allowed to ALTER the cluster (clinic-admin)."""
    created = deleted = 0
    try:
        with admin_client(bootstrap, security) as admin:
            for service in services:
                want = {_key(acl): acl for acl in service_acls(service)}
                have = _acls_of(admin, service)
                missing = [acl for key, acl in want.items() if key not in have]
                extra = [acl for key, acl in have.items() if key not in want]
                if missing:
                    result = admin.create_acls(missing)
                    if result.get("failed"):
                        raise TopicError(f"creating Kafka ACLs for {service} failed: {result['failed']}")
                    created += len(missing)
                if extra:
                    admin.delete_acls(extra)
                    deleted += len(extra)
                if missing or extra:
                    _wait_for_acls(admin, service, set(want))
    except KafkaError as exc:
        raise TopicError(f"setting Kafka ACLs on {bootstrap} failed: {type(exc).__name__}: {exc}") from exc
    if created or deleted:
        log.info("Kafka ACLs: %d created, %d deleted", created, deleted)
    return {"created": created, "deleted": deleted}


def _acls_of(admin: KafkaAdminClient, service: str) -> dict[tuple, ACL]:
    every = ACLFilter(f"User:{service}", None, ACLOperation.ANY, ACLPermissionType.ANY,
                      ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    return {_key(acl): acl for acl in admin.describe_acls(every)[0]}


def _wait_for_acls(admin: KafkaAdminClient, service: str, want: set[tuple], timeout_s: float = 15.0) -> None:
    """Until the broker shows exactly these ACLs. A created ACL reaches the broker's metadata
    image (what its authorizer and DescribeAcls read) a moment after CreateAcls answers: a
    worker started at once could otherwise be refused its first requests."""
    deadline = time.monotonic() + timeout_s
    while set(_acls_of(admin, service)) != want:
        if time.monotonic() > deadline:
            raise TopicError(f"the Kafka ACLs of {service} did not take effect within {timeout_s:g} s")
        time.sleep(0.1)
