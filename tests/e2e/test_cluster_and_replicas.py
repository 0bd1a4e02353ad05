"""`make run` as ops would scale it (issue 16 items 1 and 4): CLINIC_KAFKA_BROKERS=3 (a
three-broker KRaft cluster, every topic on 3 replicas with min.insync.replicas=2) and
CLINIC_WORKER_REPLICAS=2 (two worker processes per service in its consumer group).

Each service's two replicas split its topics' partitions; a replica killed outright loses
them to the live members (the survivor, then the supervisor's restart of it), and reports
still go end to end. docs/kafka-cluster.md says why the partition count is the ceiling.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from services.admin.topics import ALL_TOPICS, CONSUMES, topic_configs
from services.common.settings import SERVICES
from tests.chaos import kafka_probe
from tests.chaos.procs import StackProcesses

from .flow_helpers import SPECIALIST, URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e

REPLICAS = 2


@pytest.fixture(scope="module")
def scaled_stack():
    from tests.live_stack import running_stack

    with running_stack(prefix="clinic-scaled-", ready_timeout=300, brokers=3, worker_replicas=REPLICAS) as stack:
        yield stack


def test_the_stack_runs_on_three_brokers_and_every_topic_is_replicated(scaled_stack):
    bootstrap = scaled_stack.env["CLINIC_KAFKA_BOOTSTRAP"]
    assert len(bootstrap.split(",")) == 3, "the services bootstrap from every broker"
    with kafka_probe.admin(bootstrap) as admin:
        brokers = {b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b["is_fenced"]}
        described = {t["name"]: t for t in admin.describe_topics(list(ALL_TOPICS))}
        configs = topic_configs(admin, list(ALL_TOPICS), ["min.insync.replicas", "unclean.leader.election.enable"])
    assert brokers == {1, 2, 3}
    for name in ALL_TOPICS:
        partitions = described[name]["partitions"]
        assert len(partitions) == 6, name
        assert all(sorted(p["replica_nodes"]) == [1, 2, 3] for p in partitions), (name, partitions)
        assert configs[name] == {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}, name


def settled(bootstrap: str, group: str, members: int, deadline: float) -> kafka_probe.GroupState:
    """The group once stable with `members` members, every partition assigned once and none
    idle (6 partitions, 2 members)."""
    while True:
        state = kafka_probe.describe_groups(bootstrap)[group]
        if (state.state == "Stable" and state.members == members and state.fully_assigned
                and all(state.assigned.values())):
            return state
        assert time.monotonic() < deadline, f"{group} did not settle with {members} members: {state}"
        time.sleep(0.5)


@pytest.mark.parametrize("service", SERVICES)
def test_a_services_replicas_share_its_partitions_and_a_killed_ones_move(scaled_stack, service):
    bootstrap = scaled_stack.env["CLINIC_KAFKA_BOOTSTRAP"]
    group = f"clinic-{service}"
    before = settled(bootstrap, group, REPLICAS, time.monotonic() + 120)
    # Each consumed topic's 6 partitions, split evenly between the two.
    each = 6 * len(CONSUMES[service]) // REPLICAS
    assert sorted(len(parts) for parts in before.assigned.values()) == [each, each], before.assigned

    procs = StackProcesses.of(scaled_stack)
    workers = procs.snapshot()[f"{service}-worker"]
    assert len(workers) == REPLICAS, workers
    victim = workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    procs.wait_gone(victim.pid)

    # The dead member leaves the group when its session times out (or when the restarted
    # replica's join makes the group rebalance); its partitions go to members alive.
    deadline = time.monotonic() + 120
    while True:
        after = settled(bootstrap, group, REPLICAS, deadline)
        if set(after.assigned) != set(before.assigned):
            break
        time.sleep(0.5)
    assert len(set(after.assigned) & set(before.assigned)) == 1, "the survivor stays; the dead member is gone"

    intake = scaled_stack.base_url["intake"]
    key = scaled_stack.kiosk_key()
    ids = [submit(intake, key, report_body(**answers)).json()["report_id"] for answers in (URGENT, SPECIALIST)]
    for report_id in ids:
        assert wait_for_report(intake, key, report_id, timeout=120)["status"] in ("referred", "waitlisted")
