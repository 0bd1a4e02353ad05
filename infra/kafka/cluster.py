"""A local three-broker KRaft cluster (CLINIC_KAFKA_BROKERS=3): `make run`, the tests and
`make chaos` run it instead of the single broker when asked (docs/kafka-cluster.md).

Each node is a LocalKafka (runner.py) that is both broker and controller, on its own pair
of ports, with its files under <state>/kafka-<n>/ and its log in logs/kafka-<n>.log; the
jars (and their class-data archive) are shared in <state>/kafka/lib or the given lib_dir.
The controllers are static voters (controller.quorum.voters): a fixed local cluster needs
no dynamic membership. All nodes are formatted with one cluster id and the same SCRAM
credentials, so every principal logs in on any broker. Topics default to 3 replicas and
min.insync.replicas=2: with acks=all (the services' producers) an acknowledged event is
on two brokers at least, and the pipeline keeps going with any one broker down.
"""
from __future__ import annotations

import contextlib
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator, Sequence
from pathlib import Path

from infra.kafka.runner import LocalKafka, random_cluster_id, scram_arguments
from infra.postgres import InfraError
from services.admin.topics import ALL_TOPICS, Retention, admin_client, ensure_acls, ensure_topics
from services.common.settings import KAFKA_ADMIN_PRINCIPAL

REPLICAS, MIN_ISR = 3, 2


class LocalKafkaCluster:
    """len(ports) nodes (3 in practice); node n (1-based) listens on ports[n-1] and its
    controller on controller_ports[n-1]. The interface the stack and the test fixtures use
    of a single LocalKafka: bootstrap, client_security, admin, ensure_topics, running."""

    def __init__(self, state_dir: Path, ports: Sequence[int], controller_ports: Sequence[int],
                 host: str = "127.0.0.1", *, lib_dir: Path | None = None):
        if len(ports) != len(controller_ports) or len(ports) < REPLICAS:
            raise InfraError(f"a Kafka cluster needs at least {REPLICAS} nodes, each with a broker "
                             f"and a controller port: {list(ports)}, {list(controller_ports)}")
        self.state_dir = Path(state_dir).absolute()
        self.host = host
        lib_dir = lib_dir or self.state_dir / "kafka" / "lib"
        voters = ",".join(f"{n}@{host}:{cport}" for n, cport in enumerate(controller_ports, 1))
        self.nodes = [LocalKafka(self.state_dir, port, host, controller_port=cport, lib_dir=lib_dir,
                                 node_id=n, name=f"kafka-{n}", voters=voters, replicas=REPLICAS, min_isr=MIN_ISR)
                      for n, (port, cport) in enumerate(zip(ports, controller_ports), 1)]

    @classmethod
    def on_port_range(cls, state_dir: Path, base_port: int, count: int = REPLICAS, host: str = "127.0.0.1",
                      *, lib_dir: Path | None = None) -> LocalKafkaCluster:
        """Node n on base_port + 2(n-1), its controller on the port after: `make run`'s layout
        (9092-9097 by default), as the single broker's controller is on its port + 1."""
        ports = [base_port + 2 * i for i in range(count)]
        return cls(state_dir, ports, [p + 1 for p in ports], host, lib_dir=lib_dir)

    @property
    def bootstrap(self) -> str:
        """Every broker: a client finds the cluster through whichever is up."""
        return ",".join(node.bootstrap for node in self.nodes)

    def passwords(self) -> dict[str, str]:
        return self.nodes[0].passwords()  # one state folder: the nodes share <state>/secrets

    def client_security(self, principal: str = KAFKA_ADMIN_PRINCIPAL) -> dict:
        return self.nodes[0].client_security(principal)

    def ensure_jars(self) -> None:
        self.nodes[0].ensure_jars()  # one lib_dir for all

    def ensure_formatted(self) -> None:
        """Each node's properties, and the log dirs not formatted yet formatted with one
        cluster id (the formatted nodes' own, if any) and the same SCRAM credentials."""
        cluster_id = self._cluster_id() or random_cluster_id()
        passwords = self.passwords()
        scram = scram_arguments(passwords)
        # Side by side: each format is a JVM start of its own (~4 s on two busy cores).
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            for done in [pool.submit(node.ensure_formatted, cluster_id, scram) for node in self.nodes]:
                done.result()

    def _cluster_id(self) -> str | None:
        found = set()
        for node in self.nodes:
            with contextlib.suppress(OSError):
                for line in (node.data_dir / "meta.properties").read_text().splitlines():
                    if line.startswith("cluster.id="):
                        found.add(line.partition("=")[2].strip())
        if len(found) > 1:
            raise InfraError(f"the Kafka nodes under {self.state_dir} were formatted for different clusters "
                             f"({', '.join(sorted(found))}); remove their kafka-*/data dirs to start over")
        return found.pop() if found else None

    def start(self) -> list[subprocess.Popen]:
        return [node.start() for node in self.nodes]

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every broker answers (each is unfenced: caught up with the quorum)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.wait_ready(timeout=max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Every node still running (a test may have restarted some), all at once: a broker's
        clean shutdown asks the controller quorum to move its leaders away, and the last
        node stopped one by one would wait out its grace with no quorum left (measured:
        20 s and a SIGKILL, against ~2 s for all three together)."""
        running = [node for node in self.nodes if node.process is not None]
        with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
            for done in [pool.submit(node.stop, node.process) for node in running]:
                done.result()

    def admin(self, **configs):
        return admin_client(self.bootstrap, self.client_security(), **configs)

    def ensure_topics(self, names: Sequence[str] = ALL_TOPICS, partitions: int = 6,
                      retention: Retention = Retention()) -> None:
        security = self.client_security()
        ensure_topics(self.bootstrap, names, partitions, security=security, retention=retention)
        ensure_acls(self.bootstrap, security)

    @contextlib.contextmanager
    def running(self, topics: Sequence[str] = ALL_TOPICS, ready_timeout: float = 120,
                retention: Retention = Retention()) -> Iterator[list[subprocess.Popen]]:
        """The cluster with its topics and ACLs, ready; stopped when the block ends."""
        self.ensure_jars()
        self.ensure_formatted()
        try:
            procs = self.start()
            self.wait_ready(timeout=ready_timeout)
            self.ensure_topics(topics, retention=retention)
            yield procs
        finally:
            self.stop()
