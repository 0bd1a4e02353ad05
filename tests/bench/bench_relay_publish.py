"""Where the outbox relay's publish time goes (issue 15): a bare producer beside the real
OutboxRelay.publish_batch on one row, alone and beside a busy second thread, and the levers
(flush or only the futures, the relay's linger, the GIL switch interval), A/B back to back.

    .venv/bin/python tests/bench/bench_relay_publish.py [--rounds 3] [--paced 150] [--rate 15]
                                                        [--back 300] [--batches 6] [--cases all]

Not a test (pytest does not collect bench_*.py). It starts its own PostgreSQL and one broker
(SASL/SCRAM, the services' ACLs and topics) in a temporary folder, as bench_worker_drain.py
does, applies triage's migrations with the services' own code, and publishes as the triage
relay (its principal, to its decisions topic, a ~900-byte payload). Every case runs in every
round, the order reversed from one round to the next; per case:
- paced: `--paced` single rows at `--rate` a second (15/s: a report's three publishes at
  5 reports/s); back: `--back` single rows back to back. For each, p50 and p90 in ms of
  - total: for "bare" a producer's send (+flush) + get; for "relay" publish_batch on one
    row inserted just before (untimed): claim, publish, mark;
  - prod: the producer's part of it (first send() to the last future.get() returning; the
    relay's producer is wrapped, its code is not changed);
  - wake: send/flush call to the sender thread handing the produce request to the socket;
  - ack: that to the sender thread starting to handle the broker's response;
  - back: that to the waiting thread's get() returning;
- busy loops/s: the second thread's work done meanwhile (what the publishes cost it);
- batch: `--batches` publish_batch calls of BATCH_SIZE (500) rows each, rows/s (median).
A busy case runs a pure-Python loop in a second thread throughout (as the inbox consumer
would be while it applies a poll). The switch interval is the worker's (1 ms) unless named.
The 1-minute load average is printed on each case's row.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.ab_rounds import RoundTable  # noqa: E402 (after the path)

PAYLOAD_BYTES = 900
SERVICE = "triage"

# name: (bare or relay, linger_ms, flush before get, busy thread, switch interval ms)
CASES = {
    "bare L1000 flush": ("bare", 1000, True, False, 1.0),
    "relay L1000 flush": ("relay", 1000, True, False, 1.0),
    "relay L1000 flush busy": ("relay", 1000, True, True, 1.0),
    "relay L0 flush": ("relay", 0, True, False, 1.0),
    "relay L0 get-only": ("relay", 0, False, False, 1.0),
    "relay L5 flush": ("relay", 5, True, False, 1.0),
    "relay L0 flush busy": ("relay", 0, True, True, 1.0),
    "relay L0 get-only busy": ("relay", 0, False, True, 1.0),
    "relay L1000 flush busy sw5": ("relay", 1000, True, True, 5.0),
    "relay L1000 flush sw5": ("relay", 1000, True, False, 5.0),
    "relay L1000 flush busy sw0.5": ("relay", 1000, True, True, 0.5),
    "relay L1000 flush busy sw0.2": ("relay", 1000, True, True, 0.2),
    "relay L1000 flush busy sw0.1": ("relay", 1000, True, True, 0.1),
    "relay L1000 flush sw0.2": ("relay", 1000, True, False, 0.2),
}


class Stamps:
    """Times (perf_counter) of one publish's steps, reset before each."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.first_send = self.flush_called = self.request = self.response = self.last_get = None


class TimedFuture:
    def __init__(self, future, stamps: Stamps):
        self._future, self._stamps = future, stamps

    def get(self, timeout=None):
        value = self._future.get(timeout=timeout)
        self._stamps.last_get = time.perf_counter()
        return value


class TimedProducer:
    """A KafkaProducer seen through: stamps the relay's calls, optionally skips flush()."""

    def __init__(self, producer, stamps: Stamps, flush: bool):
        self._producer, self._stamps, self._flush = producer, stamps, flush
        sender = producer._sender
        client_send, handle = sender._client.send, sender._handle_produce_response

        def send_request(node_id, request, **kwargs):
            if stamps.request is None:
                stamps.request = time.perf_counter()
            return client_send(node_id, request, **kwargs)

        def handle_response(*args):
            if stamps.response is None:
                stamps.response = time.perf_counter()
            return handle(*args)

        sender._client.send = send_request  # instance attributes: the library is not changed
        sender._handle_produce_response = handle_response

    def send(self, *args, **kwargs):
        if self._stamps.first_send is None:
            self._stamps.first_send = time.perf_counter()
        return TimedFuture(self._producer.send(*args, **kwargs), self._stamps)

    def flush(self, timeout=None):
        self._stamps.flush_called = time.perf_counter()
        if self._flush:
            self._producer.flush(timeout=timeout)

    def close(self, timeout=None):
        self._producer.close(timeout=timeout)


def _busy(stop: threading.Event, done: list) -> None:
    while not stop.is_set():
        sum(i * i for i in range(2_000))
        done[0] += 1


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def _insert(conn, rows: int) -> None:
    from services.common.outbox import add_event
    from services.common.settings import TOPIC_DECISIONS

    with conn.transaction(), conn.cursor() as cur:
        for _ in range(rows):
            event = {"id": str(uuid.uuid4()), "type": "bench", "data": "x" * PAYLOAD_BYTES}
            add_event(cur, SERVICE, topic=TOPIC_DECISIONS, key=str(uuid.uuid4()), event=event,
                      traceparent="00-" + "0" * 32 + "-" + "0" * 16 + "-01")


def run_case(name: str, settings, args) -> dict:
    import psycopg

    from services.common import outbox
    from services.common.kafka_io import client_security, make_producer
    from services.common.settings import TOPIC_DECISIONS

    kind, linger, flush, busy, switch_ms = CASES[name]
    stamps = Stamps()
    security = client_security(settings)
    relay = outbox.OutboxRelay(settings.database_url, SERVICE, settings.kafka_bootstrap, "bench-relay", security)
    producer = TimedProducer(make_producer(settings.kafka_bootstrap, "bench-relay", security, linger_ms=linger),
                             stamps, flush)
    relay._producer = producer
    old_switch = sys.getswitchinterval()
    sys.setswitchinterval(switch_ms / 1000)
    stop = threading.Event()
    done = [0]
    helper = threading.Thread(target=_busy, args=(stop, done), daemon=True) if busy else None
    value = b"x" * PAYLOAD_BYTES
    headers = [("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01"),
               ("content-type", b"application/cloudevents+json")]
    result: dict = {}
    try:
        with psycopg.connect(settings.database_url, autocommit=True) as conn, \
                psycopg.connect(settings.database_url) as writer:
            outbox.purge_sent(conn, SERVICE)
            while relay.publish_batch(conn):  # rows an earlier case left
                pass
            if helper:
                helper.start()
            busy_from = (time.perf_counter(), done[0])

            def one() -> float:
                stamps.reset()
                if kind == "bare":
                    started = time.perf_counter()
                    future = producer.send(TOPIC_DECISIONS, key=uuid.uuid4().bytes, value=value, headers=headers)
                    producer.flush(timeout=30)
                    future.get(timeout=30)
                    return time.perf_counter() - started
                _insert(writer, 1)
                started = time.perf_counter()
                if relay.publish_batch(conn) != 1:
                    raise RuntimeError("expected one row")
                return time.perf_counter() - started

            one()  # the connection and the producer id, not counted
            for phase, count, rate in (("paced", args.paced, args.rate), ("back", args.back, 0.0)):
                total, prod, wake, ack, back = [], [], [], [], []
                begun = time.perf_counter()
                for i in range(count):
                    if rate:
                        time.sleep(max(0.0, begun + i / rate - time.perf_counter()))
                    total.append(one())
                    s = stamps
                    prod.append(s.last_get - s.first_send)
                    wake.append(s.request - (s.flush_called if flush else s.first_send))
                    ack.append(s.response - s.request)
                    back.append(s.last_get - s.response)
                for key, values in (("total", total), ("prod", prod), ("wake", wake), ("ack", ack),
                                    ("back", back)):
                    result[f"{phase}_{key}_p50"] = _pct(values, 0.5)
                    result[f"{phase}_{key}_p90"] = _pct(values, 0.9)
            result["busy_loops_s"] = (done[0] - busy_from[1]) / (time.perf_counter() - busy_from[0])
            rates = []
            if kind == "relay":
                for _ in range(args.batches):
                    _insert(writer, outbox.BATCH_SIZE)
                    started = time.perf_counter()
                    if relay.publish_batch(conn) != outbox.BATCH_SIZE:
                        raise RuntimeError("expected a full batch")
                    rates.append(outbox.BATCH_SIZE / (time.perf_counter() - started))
            result["batch_rows_s"] = statistics.median(rates) if rates else float("nan")
    finally:
        stop.set()
        if helper and helper.is_alive():
            helper.join()
        sys.setswitchinterval(old_switch)
        relay._close_producer()
    result["load"] = os.getloadavg()[0]
    return result


COLUMNS = [("load", "load1", "{:5.2f}")] + [
    (f"{phase}_{key}_{q}", f"{phase[0]} {key} {q}", "{:10.2f}")
    for phase in ("paced", "back") for key in ("total", "prod", "wake", "ack", "back") for q in ("p50",)
] + [("paced_total_p90", "p total p90", "{:11.2f}"), ("back_total_p90", "b total p90", "{:11.2f}"),
     ("batch_rows_s", "batch rows/s", "{:12.0f}"), ("busy_loops_s", "busy loops/s", "{:12.0f}")]
TABLE = RoundTable(COLUMNS, name_width=30)


def main(argv: list[str] | None = None) -> int:
    import logging

    import psycopg

    from services.common.db import apply_migrations
    from tests.bench.bench_worker_drain import local_infra, service_settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced", type=int, default=150)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--back", type=int, default=300)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--cases", default="all", help="comma-separated case names, or all: " + ", ".join(CASES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    names = list(CASES) if args.cases == "all" else [n.strip() for n in args.cases.split(",")]
    for name in names:
        if name not in CASES:
            parser.error(f"unknown case {name!r}")
    with local_infra() as (kafka, pg):
        settings = service_settings(kafka, pg, SERVICE)
        with psycopg.connect(settings.database_url) as conn:
            apply_migrations(conn, SERVICE, f"services.{SERVICE}")
        print(f"{args.paced} paced at {args.rate:g}/s (p), {args.back} back to back (b), {args.batches} batches "
              f"of 500; ms; {os.cpu_count()} CPUs", flush=True)
        TABLE.run(names, args.rounds, lambda name: run_case(name, settings, args),
                  lambda round_no, name: f"{round_no} {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
