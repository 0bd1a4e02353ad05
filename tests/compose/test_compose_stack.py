"""docker-compose.yml started for real (through Podman's Docker API), used over its published
ports as a kiosk and a scheduler would, then two of its containers crashed.

Run by `make compose-test` only (see conftest.py). The tests share one stack and run in
file order: healthy, the flow, the crash.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
import requests

from services.common.settings import TOPICS
from tests.compose.conftest import APIS, BROKERS, MEMORY, PHASES, PROJECT, WITH_HEALTHCHECK, health
from tests.e2e.flow_helpers import FINAL_STATUSES, SELF_CARE, SPECIALIST, URGENT, report_body, submit, wait_for_report

# Image builds are not in here; the stack's start is (a cold Kafka and PostgreSQL init).
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def credentials(stack):
    suffix = uuid.uuid4().hex[:8]
    key = stack.clinic("kiosk", "add", f"compose-kiosk-{suffix}")
    scheduler = stack.clinic("staff", "add", f"compose-scheduler-{suffix}", "--role", "scheduler")
    assert key.startswith("kiosk_") and scheduler.startswith("staff_"), (key, scheduler)
    return {"kiosk": key, "scheduler": scheduler}


def staff_get(stack, credentials, service: str, path: str, **params) -> requests.Response:
    return requests.get(f"{stack.base_url[service]}{path}", params=params, timeout=10,
                        headers={"Authorization": f"Bearer {credentials['scheduler']}"})


def test_every_container_is_healthy_and_every_api_ready(stack):
    for svc in APIS:
        try:
            ready = requests.get(f"{stack.https_url}/{svc}/readyz", timeout=5)
        except requests.RequestException:
            print(stack.compose("logs", "--no-color", "--tail=30", "proxy", svc).stdout)
            raise
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
    for service in ("postgres", *BROKERS, *APIS):
        assert stack.container(service)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_kiosk_report_is_triaged_booked_and_queued(stack, credentials):
    started = time.monotonic()
    intake = stack.base_url["intake"]
    response = submit(intake, credentials["kiosk"], report_body(**URGENT))
    assert response.status_code == 202, response.text
    report_id = response.json()["report_id"]

    view = wait_for_report(intake, credentials["kiosk"], report_id, timeout=120)
    assert view["care_level"] == "urgent"
    assert view["status"] == "referred", "the demo provider has free slots within 2 days"
    assert view["referral"]["priority"] == "urgent"

    decision = staff_get(stack, credentials, "triage", f"/v1/decisions/{report_id}")
    assert decision.status_code == 200, decision.text
    assert decision.json()["care_level"] == "urgent"
    assert {f["id"] for f in decision.json()["fired"]} == {"URG-SEVERE", "URG-SUDDEN", "URG-TRAUMA"}

    queue = staff_get(stack, credentials, "referral", "/v1/referrals", status="booked", priority="urgent")
    assert queue.status_code == 200, queue.text
    mine = [item for item in queue.json()["items"] if item["report_id"] == report_id]
    assert len(mine) == 1, queue.json()
    assert mine[0]["referral_id"] == view["referral"]["referral_id"]
    assert mine[0]["appointment"] is not None

    closed = submit(intake, credentials["kiosk"], report_body(**SELF_CARE)).json()["report_id"]
    assert wait_for_report(intake, credentials["kiosk"], closed, timeout=60)["status"] == "closed"
    PHASES["end-to-end flow (2 reports)"] = time.monotonic() - started
    MEMORY.update(stack.memory())


def crash(stack, service: str) -> int:
    """SIGKILL a container's main process from the host, as the OOM killer or a crash would;
    returns its restart count before. (`podman kill`/`docker kill` would not do: both
    count as a stop by the user, which the restart policy leaves stopped.)"""
    info = stack.container(service)
    assert info["State"]["Status"] == "running", info["State"]
    os.kill(info["State"]["Pid"], signal.SIGKILL)
    return info["RestartCount"]


def wait_restarted(stack, service: str, restarts_before: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        info = stack.container(service)
        state = info["State"]
        healthy = service not in WITH_HEALTHCHECK or health(state) == "healthy"
        if info["RestartCount"] > restarts_before and state["Status"] == "running" and healthy:
            return
        assert time.monotonic() < deadline, f"{service} not back after {timeout:g} s: {state}\n{stack.logs()}"
        time.sleep(1)


def test_crashed_worker_and_broker_come_back_and_nothing_is_lost_or_doubled(stack, credentials):
    """Reports posted before, during and after a crash of the triage worker and of the broker
    all reach their final status, each decided once and referred at most once."""
    started = time.monotonic()
    intake = stack.base_url["intake"]
    kinds = [("urgent", URGENT), ("specialist", SPECIALIST), ("self_care", SELF_CARE)]
    posted: dict[str, str] = {}  # report id -> care level

    def post_batch(count: int) -> None:
        for i in range(count):
            care_level, answers = kinds[i % len(kinds)]
            response = submit(intake, credentials["kiosk"], report_body(**answers),
                              idempotency_key=str(uuid.uuid4()))
            assert response.status_code == 202, response.text  # the outbox takes it, broker or not
            posted[response.json()["report_id"]] = care_level

    post_batch(9)
    restarts = {service: crash(stack, service) for service in ("triage-worker", "kafka")}
    post_batch(9)  # while both are down or coming back
    for service, before in restarts.items():
        wait_restarted(stack, service, before)
    PHASES["crash to both containers back (restart policy)"] = time.monotonic() - started
    post_batch(9)

    views = {rid: wait_for_report(intake, credentials["kiosk"], rid, timeout=240) for rid in posted}
    PHASES["crash to all 27 reports final"] = time.monotonic() - started
    for report_id, care_level in posted.items():
        view = views[report_id]
        assert view["status"] in FINAL_STATUSES and view["care_level"] == care_level, view
        decision = staff_get(stack, credentials, "triage", f"/v1/decisions/{report_id}")
        assert decision.status_code == 200, decision.text
        referrals = staff_get(stack, credentials, "referral", "/v1/referrals", report_id=report_id).json()["items"]
        if care_level == "self_care":
            assert view["status"] == "closed" and referrals == [], (view, referrals)
        else:
            assert view["status"] in ("referred", "waitlisted"), view
            assert len(referrals) == 1, f"report {report_id} referred {len(referrals)} times: {referrals}"
            assert referrals[0]["report_ids"] == [report_id]
            assert referrals[0]["referral_id"] == view["referral"]["referral_id"]

    assert len(TOPICS) == 4, TOPICS  # reports, decisions, referral events, patient messages
    dead = "\n".join(stack.clinic("dlq", "list", topic) for topic in TOPICS)
    assert dead.count("no dead letters") == len(TOPICS), dead


def group_members(stack, group: str) -> dict[str, set[tuple[str, int]]]:
    """member id -> the (topic, partition) pairs it holds, of a stable consumer group ({} while
    it rebalances)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="compose-test",
                             **stack.kafka_security())
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if described["group_state"] != "Stable":
        return {}
    return {member["member_id"]: {(assigned["topic"], p) for assigned in member["member_assignment"]["assigned_partitions"]
                                  for p in assigned["partitions"]}
            for member in described["members"]}


def wait_shared(stack, service: str, members: int, timeout: float = 120) -> dict[str, set]:
    """The service's group once its `members` members split every partition of what it
    consumes, none idle, none held twice."""
    from services.admin.topics import CONSUMES

    # 6 partitions a topic: KAFKA_NUM_PARTITIONS in docker-compose.yml (docs/conventions.md).
    want = {(topic, p) for topic in CONSUMES[service] for p in range(6)}
    deadline = time.monotonic() + timeout
    while True:
        found = group_members(stack, f"clinic-{service}")
        held = [pair for pairs in found.values() for pair in pairs]
        if len(found) == members and all(found.values()) and sorted(held) == sorted(want):
            return found
        assert time.monotonic() < deadline, f"the {service} workers do not share the partitions: {found}"
        time.sleep(1)


def test_each_worker_scales_out_and_a_killed_replicas_partitions_move(stack, credentials):
    """`up -d --no-deps --scale <svc>-worker=2 ...` (docs/compose.md): a second replica of
    each worker joins its consumer group and the two split its partitions; a triage replica
    SIGKILLed (the restart policy brings it back) leaves the group and its partitions go to
    live members; reports flow."""
    started = time.monotonic()
    workers = [f"{svc}-worker" for svc in APIS]
    stack.compose("up", "-d", "--no-build", "--no-deps", *(arg for w in workers for arg in ("--scale", f"{w}=2")),
                  *workers)
    replicas = stack.replicas()
    assert all(len(replicas[w]) == 2 for w in workers), {w: len(replicas[w]) for w in workers}
    for svc in APIS:
        wait_shared(stack, svc, 2)
    PHASES["scale every worker to 2, partitions shared"] = time.monotonic() - started

    before = wait_shared(stack, "triage", 2)
    victim = replicas["triage-worker"][0]
    os.kill(victim["State"]["Pid"], signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + 180
    while True:
        after = wait_shared(stack, "triage", 2, timeout=max(1.0, deadline - time.monotonic()))
        if set(after) != set(before):
            break
        assert time.monotonic() < deadline, "the killed replica's member never left the group"
        time.sleep(1)
    assert len(set(after) & set(before)) == 1, "the survivor stays, the dead member is gone"
    PHASES["SIGKILL of a triage replica until its partitions moved"] = time.monotonic() - killed

    intake = stack.base_url["intake"]
    ids = [submit(intake, credentials["kiosk"], report_body(**URGENT)).json()["report_id"] for _ in range(6)]
    for report_id in ids:
        assert wait_for_report(intake, credentials["kiosk"], report_id, timeout=120)["care_level"] == "urgent"
    PHASES["scaled workers, 6 reports final"] = time.monotonic() - killed


def test_the_broker_wants_sasl_and_enforces_acls(stack):
    """Issue 13 part 1 in compose: no client gets in without SASL/SCRAM, a service's principal
    may not write another service's topic, and the topics one-shot (as clinic-admin) set
    every topic's retention.ms. The flow above is the allowed side of each ACL."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from services.admin.topics import ALL_TOPICS, Retention, admin_client, topic_configs
    from tests.integration.test_kafka_acls import DENY, try_write

    with pytest.raises(KafkaError):  # a PLAINTEXT client: the broker closes the connection
        KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="compose-test-anonymous").close()
    assert try_write(stack.kafka_bootstrap, stack.kafka_security("triage"), "clinic.symptom-reports.v1") == DENY
    with admin_client(stack.kafka_bootstrap, stack.kafka_security()) as admin:
        configs = topic_configs(admin, list(ALL_TOPICS), ["retention.ms"])
    assert {topic: configs[topic]["retention.ms"] for topic in ALL_TOPICS} == {
        topic: str(Retention().ms(topic)) for topic in ALL_TOPICS}


def test_the_proxy_is_the_only_way_in(stack):
    """Issue 12 part 4 in compose: HTTPS with HSTS on the proxy, plain HTTP redirected to it,
    /metrics never served, and no API publishes a port of its own."""
    ready = requests.get(f"{stack.https_url}/intake/readyz", timeout=5)
    assert ready.headers["Strict-Transport-Security"].startswith("max-age="), ready.headers
    redirect = requests.get(f"{stack.http_url}/queue", allow_redirects=False, timeout=5)
    assert redirect.status_code == 308 and redirect.headers["Location"].startswith("https://"), redirect.headers
    assert requests.get(f"{stack.https_url}/metrics", timeout=5).status_code == 404
    replicas = stack.replicas()  # every worker is scaled to two by now
    for service in (*APIS, *(f"{svc}-worker" for svc in APIS)):
        for info in replicas[service]:
            assert not host_ports(info), f"{service} publishes a port: {host_ports(info)}"
    assert set(host_ports(replicas["proxy"][0])) == {"443/tcp", "80/tcp"}, "the proxy publishes HTTPS and HTTP"
    # PostgreSQL and Kafka: on the host's loopback alone, and only because the tests add
    # infra/containers/compose.host-access.yml (docker-compose.yml publishes neither).
    for service in ("postgres", *BROKERS):
        bound = host_ports(replicas[service][0])
        assert bound and all(b["HostIp"] == "127.0.0.1" for bindings in bound.values() for b in bindings), bound


def try_connect(stack, service: str, address: str, port: int) -> str:
    """From inside the service's container: "connected", or the error's errno name."""
    code = ("import socket,errno\n"
            "try:\n"
            f"    socket.create_connection(({address!r},{port}),timeout=5).close()\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print(errno.errorcode.get(e.errno,repr(e)))\n")
    container = stack.replicas()[service][0]["Id"]  # the workers are scaled to two by now
    result = subprocess.run(["podman", "exec", container, "python", "-c", code],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_only_the_intake_worker_has_a_way_out(stack):
    """`backend` is internal (no route out of it); the intake worker alone is also on `egress`,
    for the SMTP server and the SMS gateway. Tried against a listener on a host address that
    is on none of those two networks (the `edge` network's gateway)."""
    gateway = subprocess.run(["podman", "network", "inspect", f"{PROJECT}_edge", "--format",
                              "{{range .Subnets}}{{.Gateway}}{{end}}"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    assert gateway, f"{PROJECT}_edge has no gateway"
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        assert try_connect(stack, "intake-worker", gateway, port) == "connected"
        for service in (*APIS, "triage-worker", "referral-worker"):
            assert try_connect(stack, service, gateway, port) == "ENETUNREACH", service


def host_ports(info: dict) -> dict:
    """container port -> its host bindings, for the ports bound on the host (an image's
    EXPOSE shows up with no binding)."""
    return {port: bound for port, bound in (info["HostConfig"].get("PortBindings") or {}).items() if bound}
