"""What SASL/SCRAM-SHA-512 costs the pipeline, against PLAINTEXT, on one local broker.

    .venv/bin/python -m infra.kafka.bench_sasl [--events 20000] [--rounds 2]

A throwaway broker (temp state folder, free ports, the cached jars) with the usual SASL
client listener and one extra PLAINTEXT listener (LocalKafka's plaintext_port). The same
ACLs allow the bench topics to both principals, `triage` over SCRAM and User:ANONYMOUS over
PLAINTEXT, so that both pay the authorizer and the only difference is SASL. Per round and
protocol, on a fresh 6-partition topic: a producer built like the services' (kafka_io:
idempotent, acks=all, linger 5 ms) sends N events of ~600 bytes while a consumer built like
the services' (kafka_io.make_consumer, its own group) reads them; events/s is N over the time
from the first send to the last event read, latency is send-to-read of each event (one
process, one clock). Then the cost of a connection: a new producer's first acked send,
median of 15. Protocols alternate, rounds repeat, so that a busy machine affects both.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

from infra.kafka.runner import LocalKafka
from infra.postgres import free_port
from services.admin.topics import ensure_topics
from services.common.kafka_io import make_consumer, make_producer

PAYLOAD = json.dumps({"specversion": "1.0", "type": "clinic.report.submitted", "source": "/bench",
                      "data": {"answers": {f"q{i}": "a moderately long answer text" for i in range(12)}}})


def grant_bench_acls(kafka: LocalKafka) -> None:
    acls = []
    for principal in ("User:triage", "User:ANONYMOUS"):
        def allow(op, rtype, name, pattern=ACLResourcePatternType.PREFIXED):
            return ACL(principal, "*", op, ACLPermissionType.ALLOW, ResourcePattern(rtype, name, pattern))
        acls += [allow(ACLOperation.WRITE, ResourceType.TOPIC, "clinic.bench."),
                 allow(ACLOperation.READ, ResourceType.TOPIC, "clinic.bench."),
                 allow(ACLOperation.READ, ResourceType.GROUP, "bench-"),
                 allow(ACLOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER, "kafka-cluster",
                       ACLResourcePatternType.LITERAL)]
    with kafka.admin() as admin:
        admin.create_acls(acls)
    time.sleep(1)  # the ACLs reach the broker's metadata image


def one_run(kafka: LocalKafka, bootstrap: str, security: dict, events: int, label: str) -> dict:
    topic = f"clinic.bench.{label}.{uuid.uuid4().hex[:6]}"
    # Not kafka.ensure_topics: it would also put triage's ACLs back as they are in production.
    ensure_topics(kafka.bootstrap, [topic], 6, security=kafka.client_security())
    consumer = make_consumer(bootstrap, f"bench-{uuid.uuid4().hex[:6]}", [topic], "bench-consumer", security)
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    producer = make_producer(bootstrap, "bench-producer", security)
    latencies: list[float] = []
    started = time.monotonic()

    def produce() -> None:
        for i in range(events):
            producer.send(topic, key=str(i % 997).encode(),
                          value=json.dumps({"t": time.monotonic(), "e": PAYLOAD}).encode())
        producer.flush(timeout=120)

    sender = threading.Thread(target=produce)
    sender.start()
    deadline = time.monotonic() + 300
    while len(latencies) < events and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=1000).values():
            now = time.monotonic()
            latencies += [now - json.loads(r.value)["t"] for r in records]
    elapsed = time.monotonic() - started
    sender.join()
    producer.close(timeout=10)
    consumer.close()
    if len(latencies) < events:
        raise RuntimeError(f"{label}: read {len(latencies)} of {events} events")
    latencies.sort()
    return {"events_per_s": events / elapsed, "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000}


def connect_cost(bootstrap: str, security: dict, topic: str, tries: int = 15) -> float:
    """Median ms from building a producer to its first acked send (connection, SASL
    handshake if any, metadata, producer id)."""
    took = []
    for _ in range(tries):
        started = time.monotonic()
        producer = make_producer(bootstrap, "bench-connect", security)
        producer.send(topic, b"x").get(timeout=30)
        took.append(time.monotonic() - started)
        producer.close(timeout=5)
    return statistics.median(took) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.kafka.bench_sasl", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    state = Path(tempfile.mkdtemp(prefix="clinic-bench-sasl-"))
    lib = Path(__file__).resolve().parents[2] / ".state" / "kafka" / "lib"
    kafka = LocalKafka(state, port=free_port(), controller_port=free_port(), plaintext_port=free_port(),
                       lib_dir=lib if lib.is_dir() else None)
    modes = {"PLAINTEXT": (f"{kafka.host}:{kafka.plaintext_port}", {}),
             "SASL_PLAINTEXT/SCRAM-SHA-512": (kafka.bootstrap, kafka.client_security("triage"))}
    results: dict[str, list[dict]] = {mode: [] for mode in modes}
    try:
        with kafka.running(topics=[]):  # (no topics; the services' ACLs)
            grant_bench_acls(kafka)
            for mode, (bootstrap, security) in modes.items():  # warm-up: JIT, page cache
                one_run(kafka, bootstrap, security, min(2_000, args.events), "warmup")
            for round_no in range(args.rounds):
                for mode, (bootstrap, security) in modes.items():
                    result = one_run(kafka, bootstrap, security, args.events, f"r{round_no}")
                    results[mode].append(result)
                    print(f"round {round_no + 1} {mode:<29} {result['events_per_s']:>8.0f} events/s  "
                          f"p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:7.1f} ms", flush=True)
            topic = f"clinic.bench.connect.{uuid.uuid4().hex[:6]}"
            ensure_topics(kafka.bootstrap, [topic], 1, security=kafka.client_security())
            for mode, (bootstrap, security) in modes.items():
                print(f"connect {mode:<29} first acked send of a new producer: median "
                      f"{connect_cost(bootstrap, security, topic):.1f} ms", flush=True)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    for mode, runs in results.items():
        print(f"median {mode:<29} {statistics.median(r['events_per_s'] for r in runs):>8.0f} events/s  "
              f"p50 {statistics.median(r['p50_ms'] for r in runs):6.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
