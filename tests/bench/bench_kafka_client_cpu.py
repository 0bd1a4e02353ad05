"""What kafka-python itself costs in CPU per message at a paced rate (issue 15): a producer built
as the relays' (send, flush and wait for each message: a relay's batch at moderate load is
one or a few events), and a consumer polling in a thread of the same process as the workers'
(kafka_io.make_consumer), both on one broker, nothing else in the process.

    .venv/bin/python tests/bench/bench_kafka_client_cpu.py [--rates 50,100] [--seconds 10]

Not a test (pytest does not collect bench_*.py). One broker (infra/kafka/runner.py's LocalKafka,
SASL/SCRAM as clinic-admin, as the tests' `kafka` fixture starts it) in a temporary folder; a
6-partition topic; messages of 2 KB (a decision's event). For idle and each rate: this
process's CPU (user + system, every thread: the caller's, kafka-python's IO and sender
threads) over the load, as cores and as ms per message, once with the producer alone and once
with the consumer polling too, and the broker's CPU beside it.

Why: the stack's CPU per report at 25-50 reports/s is several times what a burst costs per
report (tests/bench/cpu_by_rate.py); a worker's cycle per poll holds one consume and one
publish, and this measures what those two cost in the client library alone.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.bench_broker_ack import send_and_wait  # noqa: E402
from tests.bench.process_cpu import cpu_seconds  # noqa: E402

PARTITIONS = 6
PAYLOAD_BYTES = 2_000
IDLE_S = 5.0
SETTLE_S = 1.0


class PollingConsumer:
    """A consumer polling in its own thread, counting what it receives."""

    def __init__(self, bootstrap: str, security: dict, topic: str):
        from services.common.kafka_io import make_consumer

        self.consumer = make_consumer(bootstrap, f"bench-client-cpu-{uuid.uuid4().hex[:6]}", [topic],
                                      client_id="bench-client-cpu", security=security)
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-consumer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            for records in self.consumer.poll(timeout_ms=500).values():
                self.received += len(records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.consumer.close(autocommit=False)


def paced_sends(producer, topic: str, rate: float, seconds: float) -> int:
    """Send, flush and wait for each message, message i due at start + i/rate; how many."""
    return len(send_and_wait(producer, topic, round(rate * seconds), b"x" * PAYLOAD_BYTES, rate))


def measure(producer, topic: str, broker_pid: int, rate: float, seconds: float) -> tuple[float, float, int]:
    """(this process's CPU s, the broker's CPU s, messages) over idle or a paced load."""
    cpu, broker = cpu_seconds(os.getpid()), cpu_seconds(broker_pid)
    sent = 0
    if rate:
        sent = paced_sends(producer, topic, rate, seconds)
        time.sleep(SETTLE_S)
    else:
        time.sleep(IDLE_S)
    return cpu_seconds(os.getpid()) - cpu, cpu_seconds(broker_pid) - broker, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="50,100", help="messages per second, in order")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    import kafka

    from infra.kafka.runner import LocalKafka
    from infra.postgres import free_port
    from services.admin.topics import ensure_topics
    from services.common.kafka_io import make_producer
    from tests.live_stack import kafka_lib_dir

    print(f"kafka-python {kafka.__version__}, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="clinic-bench-client-cpu-") as tmp:
        broker = LocalKafka(Path(tmp), port=free_port(), controller_port=free_port(), lib_dir=kafka_lib_dir())
        broker.ensure_jars()
        broker.ensure_formatted()
        proc = broker.start()
        try:
            broker.wait_ready(timeout=120)
            security = broker.client_security()
            topic = f"clinic.bench.client.{uuid.uuid4().hex[:6]}"
            ensure_topics(broker.bootstrap, [topic], PARTITIONS, security=security)
            producer = make_producer(broker.bootstrap, "bench-client-cpu", security, linger_ms=1_000)
            consumer = None
            try:
                paced_sends(producer, topic, 100.0, 5.0)  # warm-up: connections, metadata, JIT
                print(f"{'what':<28}{'cores':>7}{'ms/message':>12}{'broker ms/message':>19}")
                for polling in (False, True):
                    if polling:
                        consumer = PollingConsumer(broker.bootstrap, security, topic)
                        time.sleep(5)  # joined the group, first fetches done
                    for rate in [0.0, *rates]:
                        cpu, broker_cpu, sent = measure(producer, topic, proc.pid, rate, args.seconds)
                        elapsed = args.seconds + SETTLE_S if rate else IDLE_S
                        what = f"{'producer + consumer' if polling else 'producer'} {'idle' if not rate else f'{rate:g}/s'}"
                        per = f"{1000 * cpu / sent:12.2f}{1000 * broker_cpu / sent:19.2f}" if sent else f"{'':12}{'':19}"
                        print(f"{what:<28}{cpu / elapsed:7.3f}{per}", flush=True)
            finally:
                if consumer is not None:
                    consumer.close()
                producer.close(timeout=10)
        finally:
            broker.stop(proc)


if __name__ == "__main__":
    main()
