"""A real three-broker KRaft cluster (infra/kafka/cluster.py, what CLINIC_KAFKA_BROKERS=3 and
compose run) on free ports, started here without a supervisor so that a broker stays dead
as long as the test wants: every topic on 3 replicas with min.insync.replicas=2 and unclean
leader election off; with the leader of partitions SIGKILLed, the services' producer
(acks=all, idempotent) and a consumer still work through the two left, every partition's
new leader one of its in-sync replicas; the dead broker, restarted, catches up."""
from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from kafka.errors import KafkaConnectionError

from infra.kafka.cluster import LocalKafkaCluster
from services.admin.topics import ALL_TOPICS, topic_configs
from services.common.kafka_io import make_producer
from services.common.settings import TOPIC_REPORTS
from tests.kafka_support import read_topic
from tests.live_stack import kafka_lib_dir

pytestmark = pytest.mark.integration


def _free_ports(count: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.create_server(("127.0.0.1", 0))) for _ in range(count)]
        return [s.getsockname()[1] for s in socks]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalKafkaCluster]:
    ports = _free_ports(6)
    cluster = LocalKafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), ports[:3], ports[3:], lib_dir=kafka_lib_dir())
    with cluster.running():
        yield cluster


def partitions(cluster: LocalKafkaCluster, topic: str, timeout: float = 30) -> dict[int, dict]:
    """The topic's partitions as the cluster describes them. Retried on a connection error:
    kafka-python's admin client gives up on a request to a broker that just died (until
    the cluster's metadata drops it) instead of asking another."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with cluster.admin() as admin:
                return {p["partition_index"]: p for p in admin.describe_topics([topic])[0]["partitions"]}
        except KafkaConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_every_topic_has_three_replicas_two_in_sync_to_write_and_no_unclean_election(cluster):
    with cluster.admin() as admin:
        described = {t["name"]: t for t in admin.describe_topics(list(ALL_TOPICS))}
        configs = topic_configs(admin, list(ALL_TOPICS), ["min.insync.replicas", "unclean.leader.election.enable"])
    for name in ALL_TOPICS:
        assert all(sorted(p["replica_nodes"]) == [1, 2, 3] and sorted(p["isr_nodes"]) == [1, 2, 3]
                   for p in described[name]["partitions"]), name
        assert configs[name] == {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}, name
    # Leaders spread over the three brokers, not all on the first one up.
    leaders = {p["leader_id"] for p in described[TOPIC_REPORTS]["partitions"]}
    assert len(leaders) >= 2, leaders


def test_a_broker_killed_outright_loses_no_acknowledged_event_and_the_pipeline_goes_on(cluster):
    before = partitions(cluster, TOPIC_REPORTS)
    victim_id = before[0]["leader_id"]
    victim = cluster.nodes[victim_id - 1]
    security = cluster.client_security()
    run = uuid.uuid4().hex[:8]
    producer = make_producer(cluster.bootstrap, f"cluster-test-{run}", security)
    try:
        first = [f"{run}-before-{i}" for i in range(30)]
        for key in first:
            producer.send(TOPIC_REPORTS, key=key.encode(), value=b"{}")
        producer.flush(timeout=30)

        victim.process.kill()  # SIGKILL: no controlled shutdown, no leadership handed over
        victim.process.wait()
        # Every partition the dead broker led gets a new leader from its in-sync replicas.
        deadline = time.monotonic() + 60
        while True:
            now = partitions(cluster, TOPIC_REPORTS)
            if all(p["leader_id"] not in (victim_id, -1) and victim_id not in p["isr_nodes"] for p in now.values()):
                break
            assert time.monotonic() < deadline, f"no new leaders 60 s after broker {victim_id} died: {now}"
            time.sleep(0.5)
        for index, p in now.items():
            assert p["leader_id"] in before[index]["isr_nodes"], (index, before[index], p)
            assert sorted(p["isr_nodes"]) == sorted(set(before[index]["isr_nodes"]) - {victim_id}), p

        # acks=all with 2 of 3 in sync: min.insync.replicas=2 is met, so writes are taken.
        second = [f"{run}-after-{i}" for i in range(30)]
        futures = [producer.send(TOPIC_REPORTS, key=key.encode(), value=b"{}") for key in second]
        for future in futures:
            assert future.get(timeout=60).offset >= 0
    finally:
        producer.close(timeout=10)

    found = [m.key.decode() for m in read_topic(cluster.bootstrap, TOPIC_REPORTS, keys=set(first + second),
                                                  security=security)]
    assert sorted(found) == sorted(first + second), "every acknowledged event once, none lost or doubled"

    victim.start()  # back: it catches up and rejoins every partition's in-sync replicas
    deadline = time.monotonic() + 120
    while sorted(len(p["isr_nodes"]) for p in partitions(cluster, TOPIC_REPORTS).values()) != [3] * 6:
        assert time.monotonic() < deadline, f"broker {victim_id} not back in sync: {partitions(cluster, TOPIC_REPORTS)}"
        time.sleep(0.5)
