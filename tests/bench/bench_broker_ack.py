"""What the broker JVM's JIT setting costs a produce acknowledgement (issue 15): the runner's
JVM_OPTS (C1 only, -XX:TieredStopAtLevel=1) beside the same options without that flag (full
tiered compilation, C1 then C2).

    .venv/bin/python tests/bench/bench_broker_ack.py [--rounds 2] [--warmup 3000] [--sends 2000]
                                                     [--batch 20000]

Not a test (pytest does not collect bench_*.py). Each round starts one broker per variant,
one after the other (the order alternates from round to round: A B, B A, ...), each in its
own temporary state folder on free ports with the cached jars and class-data archive, as the
tests' `kafka` fixture starts it (infra/kafka/runner.py's LocalKafka, SASL/SCRAM, clinic-admin
as the client). For each broker:
- ready: seconds from start() to an admin client's first topic listing (wait_ready);
- cold p50: a single send-and-wait over the first 500 warm-up sends, right after start;
- after `--warmup` sends, `--sends` sequential single sends, each flushed and waited for
  (send, flush, get: the relay's pattern, so the producer's linger is never waited), on a
  6-partition topic with a producer built like the relays' (kafka_io.make_producer:
  acks=all, idempotent): p50/p90/p99 in ms, and the broker's CPU per send (its process's
  user+system time over that phase);
- batch: `--batch` sends then one flush (the relay's pattern for a backlog), sends/s;
- late: `--sends` single sends again after the batch (a longer-warmed JIT), p50 and p99;
- paced: `--paced` single sends at `--rate` a second (15/s: a report's three publishes at
  5 reports/s; the broker idle in between), p50 and p99.
The load average (1 min) is printed before each broker starts.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.ab_rounds import RoundTable  # noqa: E402 (after the path)
from tests.bench.process_cpu import cpu_seconds  # noqa: E402

PAYLOAD_BYTES = 900  # about a report event's envelope
PARTITIONS = 6
COLD_SENDS = 500


def variants() -> dict[str, list[str]]:
    """The runner's JVM options with the C1-only flag, and without it (whichever the default)."""
    from infra.kafka.runner import JVM_OPTS

    tiered = [o for o in JVM_OPTS if not o.startswith("-XX:TieredStopAtLevel")]
    return {"C1 only (TieredStopAtLevel=1)": [*tiered, "-XX:TieredStopAtLevel=1"], "tiered C1+C2": tiered}


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def send_and_wait(producer, topic: str, count: int, value: bytes, rate: float = 0.0) -> list[float]:
    """Seconds each of `count` sequential sends took from send() to its acknowledgement;
    with a `rate`, send i is due at start + i/rate (an idle broker between sends)."""
    took = []
    begun = time.perf_counter()
    headers = [("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"),
               ("content-type", b"application/cloudevents+json")]
    for i in range(count):
        if rate:
            time.sleep(max(0.0, begun + i / rate - time.perf_counter()))
        started = time.perf_counter()
        future = producer.send(topic, key=str(i % 997).encode(), value=value, headers=headers)
        producer.flush(timeout=30)
        future.get(timeout=30)
        took.append(time.perf_counter() - started)
    return took


def measure_broker(jvm_opts: list[str], warmup: int, sends: int, batch: int, paced: int, rate: float) -> dict:
    """Start one broker with `jvm_opts`, measure it, stop it; the figures as a dict."""
    from infra.kafka.runner import LocalKafka
    from infra.postgres import free_port
    from services.admin.topics import ensure_topics
    from services.common.kafka_io import make_producer
    from tests.live_stack import kafka_lib_dir

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="clinic-bench-ack-") as tmp:
        kafka = LocalKafka(Path(tmp), port=free_port(), controller_port=free_port(), lib_dir=kafka_lib_dir(),
                           jvm_opts=jvm_opts)
        kafka.ensure_jars()
        kafka.ensure_formatted()
        started = time.monotonic()
        proc = kafka.start()
        try:
            kafka.wait_ready(timeout=120)
            ready_s = time.monotonic() - started
            topic = f"clinic.bench.ack.{uuid.uuid4().hex[:6]}"
            ensure_topics(kafka.bootstrap, [topic], PARTITIONS, security=kafka.client_security())
            value = b"x" * PAYLOAD_BYTES
            producer = make_producer(kafka.bootstrap, "bench-broker-ack", kafka.client_security())
            try:
                warm = send_and_wait(producer, topic, warmup, value)
                cpu_before = cpu_seconds(proc.pid)
                took = sorted(send_and_wait(producer, topic, sends, value))
                cpu_per_send_ms = (cpu_seconds(proc.pid) - cpu_before) / sends * 1000
                batch_started = time.perf_counter()
                for i in range(batch):
                    producer.send(topic, key=str(i % 997).encode(), value=value)
                producer.flush(timeout=120)
                batch_per_s = batch / (time.perf_counter() - batch_started)
                late = sorted(send_and_wait(producer, topic, sends, value))
                slow = sorted(send_and_wait(producer, topic, paced, value, rate))
            finally:
                producer.close(timeout=10)
        finally:
            kafka.stop(proc)
    return {"load": load, "ready_s": ready_s,
            "cold_p50_ms": statistics.median(warm[:COLD_SENDS]) * 1000,
            "p50_ms": _percentile(took, 0.50) * 1000, "p90_ms": _percentile(took, 0.90) * 1000,
            "p99_ms": _percentile(took, 0.99) * 1000, "broker_cpu_ms": cpu_per_send_ms,
            "batch_per_s": batch_per_s, "late_p50_ms": _percentile(late, 0.50) * 1000,
            "late_p99_ms": _percentile(late, 0.99) * 1000, "paced_p50_ms": _percentile(slow, 0.50) * 1000,
            "paced_p99_ms": _percentile(slow, 0.99) * 1000}


COLUMNS = [("load", "load1", "{:5.2f}"), ("ready_s", "ready s", "{:7.2f}"), ("cold_p50_ms", "cold p50", "{:8.2f}"),
           ("p50_ms", "p50 ms", "{:6.2f}"), ("p90_ms", "p90 ms", "{:6.2f}"), ("p99_ms", "p99 ms", "{:6.2f}"),
           ("broker_cpu_ms", "broker CPU ms/send", "{:18.2f}"), ("batch_per_s", "batch sends/s", "{:13.0f}"),
           ("late_p50_ms", "late p50", "{:8.2f}"), ("late_p99_ms", "late p99", "{:8.2f}"),
           ("paced_p50_ms", "paced p50", "{:9.2f}"), ("paced_p99_ms", "paced p99", "{:9.2f}")]
TABLE = RoundTable(COLUMNS, name_width=38, gap="  ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3_000)
    parser.add_argument("--sends", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--paced", type=int, default=200, help="single sends at --rate, last")
    parser.add_argument("--rate", type=float, default=15.0,
                        help="sends/s of the paced phase (15: three publishes a report at 5 reports/s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    options = variants()
    print(f"{args.warmup} warm-up sends, {args.sends} measured, batch of {args.batch}, "
          f"{args.paced} paced at {args.rate:g}/s; "
          f"{os.cpu_count()} CPUs", flush=True)
    TABLE.run(list(options), args.rounds,
              lambda name: measure_broker(options[name], args.warmup, args.sends, args.batch, args.paced, args.rate),
              lambda round_no, name: f"round {round_no} {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
