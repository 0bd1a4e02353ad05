"""How fast each worker drains a backlog (issue 15), beside a bare consumer's ceiling.

    .venv/bin/python tests/bench/bench_worker_drain.py [--services triage,referral,intake]
                                                       [--scale 1.0]

Not a test (pytest does not collect bench_*.py). Run as a script it starts its own
PostgreSQL and Kafka (SASL/SCRAM, the services' ACLs) in a temporary folder. Importable:

    from tests.bench.bench_worker_drain import measure
    rows = measure(kafka, pg)   # infra's LocalKafka (running) and running_postgres's server
    # -> [{"service": "triage", "events": 20000, "events_per_s": ..., "ceiling_per_s": ...,
    #      "ratio": ..., "published_s": ..., "worker_cpu_us": ..., "pg_cpu_us": ..., "load": ...}, ...]

For each service, alone: a backlog of valid events, built with the services' own event
builders, is produced to the topics it consumes (after the end offsets that the bench's
consumer groups start from, so earlier runs on the same broker do not count):
- triage: 20,000 report events (intake's report_event; answers of every care level);
- referral: 10,000 decisions (40% urgent, 40% specialist, 20% self care; a new patient
  each), with 8 providers' slots over the next 14 days, so most are booked, some
  waitlisted;
- intake (the kiosk status view): 10,000 reports in its table (one in two with email
  consent), then 10,000 decisions and 10,000 booked referral events for them.
Then the service's real worker (services.common.worker.run_worker: migrations, outbox
relay, inbox consumer) drains it: events/s is counted from the first inbox row to the
last (a group join is not the drain), `published_s` is when its relay had sent every
outbox row too. CPU per event over the same window: `worker_cpu_us`, the bench process
(the worker's threads: consumer, Kafka client, relay) less the thread that watches the
inbox; `pg_cpu_us`, the PostgreSQL cluster's processes (postmaster, its children, the ones
that exited) less the watcher's own backend. The ceiling, in the same run, on the same broker and database: a bare
kafka-python consumer of the same messages (max_poll_records 500) that inserts each poll's
payloads with one executemany into a temporary table, commits, then commits its offsets.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from unittest import mock

import psycopg
from kafka import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from services.common import envelope, worker as worker_module  # noqa: E402
from services.common import settings as settings_module  # noqa: E402
from services.common.db import apply_migrations  # noqa: E402
from services.common.envelope import new_traceparent  # noqa: E402
from services.common.kafka_io import make_producer  # noqa: E402
from services.common.settings import TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS, TOPIC_REPORTS  # noqa: E402

COUNTS = {"triage": 20_000, "referral": 10_000, "intake": 20_000}
CEILING_TABLE = "bench_drain_ceiling"


# -- settings and Kafka plumbing ----------------------------------------------------------------
def service_settings(kafka, pg, service: str) -> settings_module.Settings:
    env = {"CLINIC_STATE_DIR": str(kafka.state_dir), "CLINIC_PG_HOST": pg.host, "CLINIC_PG_PORT": str(pg.port),
           "CLINIC_DATABASE_URL": pg.role_url(service), "CLINIC_KAFKA_BOOTSTRAP": kafka.bootstrap,
           "CLINIC_SECRET_KEY": "bench-secret"}
    return settings_module.load(service, env=env)


def start_group_at_end(kafka, security: dict, group: str, topics: list[str]) -> None:
    """Commit the group's offsets at the topics' current ends: it will read only what comes next."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False,
                             client_id="bench-drain-start", **security)
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        consumer.assign(partitions)
        consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in consumer.end_offsets(partitions).items()})
    finally:
        consumer.close(autocommit=False)


def produce_all(kafka, messages: list[tuple[str, str, bytes]]) -> None:
    """(topic, key, value) each with a traceparent, as the relays send them."""
    producer = make_producer(kafka.bootstrap, "bench-drain-load", kafka.client_security())
    try:
        for topic, key, value in messages:
            producer.send(topic, key=key.encode(), value=value,
                          headers=[("traceparent", new_traceparent().encode()),
                                   ("content-type", b"application/cloudevents+json")])
        producer.flush(timeout=120)
    finally:
        producer.close(timeout=10)


# -- backlogs, built with the services' own builders ---------------------------------------------
def triage_backlog(settings, count: int) -> list[tuple[str, str, bytes]]:
    from services.intake.events import report_event

    today = date.today()
    out = []
    for i in range(count):
        report_id = str(uuid.uuid4())
        severity = (3, 5, 8, 9)[i % 4]
        answers = {
            "activity": {"sport": "running", "high_impact": i % 2 == 0},
            "pain": {"locations": ["groin"] if i % 3 == 0 else ["outer_hip"], "side": "left", "severity": severity,
                     "onset": "sudden" if i % 5 == 0 else "gradual",
                     "started_on": (today - timedelta(days=5 + i % 60)).isoformat(), "direct_trauma": i % 7 == 0},
            "function": {"joint_locking": i % 11 == 0, "instability": False, "persistent_dysfunction": False},
            "home_care": {"measures": ["rest"], "days": 7, "improving": "no"},
        }
        patient = {"mrn": f"MRN-{report_id[:10]}", "given_name": "Ana", "family_name": "Silva",
                   "birth_date": "1991-04-02", "phone": "+15550100"}
        event = report_event(report_id, patient, answers, datetime.now(UTC).isoformat())
        out.append((TOPIC_REPORTS, report_id, envelope.encode(event)))
    return out


def decision(report_id: str, care_level: str, mrn: str) -> dict:
    """A decision as triage publishes it (services/triage/events.decision_event)."""
    from services.triage.events import decision_event

    terms = {"urgent": {"priority": "urgent", "within_days": 2},
             "specialist": {"priority": "routine", "within_days": 14}}.get(care_level)
    made = {"care_level": care_level, "rules_version": "2026-12-1", "fired": [], "likely_source": "joint",
            "possible_causes": [], "notes": [], "advice": ["Rest from running."], "referral": terms}
    patient = {"mrn": mrn, "display_name": "Ana Silva", "birth_date": "1991-04-02"}
    return decision_event(report_id, made, datetime.now(UTC).isoformat(), patient)


def referral_backlog(settings, count: int) -> list[tuple[str, str, bytes]]:
    from services.referral import booking, slot_store

    now = datetime.now(UTC)
    first = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    with psycopg.connect(settings.database_url) as conn:
        for n in range(8):
            provider = slot_store.add_provider(conn, f"Bench clinic {uuid.uuid4()}", "pain_management", "Room 1")
            starts = [first + timedelta(minutes=30 * k) for k in range(14 * 48 - 2)]
            booking.add_slots(conn, [(provider["provider_id"], s, s + timedelta(minutes=30)) for s in starts],
                              now=now, traceparent=new_traceparent(), skip_existing=True)
        conn.commit()
    levels = ("urgent", "specialist", "urgent", "specialist", "self_care")
    out = []
    for i in range(count):
        report_id = str(uuid.uuid4())
        event = decision(report_id, levels[i % 5], f"MRN-{uuid.uuid4().hex[:12]}")
        out.append((TOPIC_DECISIONS, report_id, envelope.encode(event)))
    return out


def booked_snapshot(report_id: str) -> dict:
    """A referral event as the referral service publishes it (services/referral/events.py)."""
    from services.referral.events import BOOKED_EVENT, referral_event

    created = datetime.now(UTC)
    start = created + timedelta(days=1)
    view = {"referral_id": str(uuid.uuid4()), "report_id": report_id, "report_ids": [report_id],
            "care_level": "urgent", "priority": "urgent", "status": "booked", "sequence": 1,
            "created_at": created, "window_ends_at": created + timedelta(days=2),
            "appointment": {"slot_id": str(uuid.uuid4()), "start": start, "end": start + timedelta(minutes=30),
                            "provider": "Dr. Rui Costa", "location": "Clinic North"}}
    return referral_event(BOOKED_EVENT, view)


def intake_backlog(settings, count: int) -> list[tuple[str, str, bytes]]:
    reports = [str(uuid.uuid4()) for _ in range(count // 2)]
    with psycopg.connect(settings.database_url) as conn:
        kiosk = conn.execute("INSERT INTO intake.kiosks (name, key_hash) VALUES (%s, 'x') RETURNING kiosk_id",
                             (f"bench-{uuid.uuid4()}",)).fetchone()[0]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO intake.reports (report_id, kiosk_id, idempotency_key, body_hash, patient, clinical)"
                " VALUES (%s, %s, %s, 'x', %s, '{}')",
                [(r, kiosk, r, Jsonb({"mrn": f"MRN-{r[:10]}", "given_name": "Ana", "family_name": "Silva",
                                      "birth_date": "1991-04-02", "phone": "+15550100",
                                      "email": f"p{i}@example.org",
                                      "contact_consent": ["email"] if i % 2 else []}))
                 for i, r in enumerate(reports)])
        conn.commit()
    out = []
    for report_id in reports:
        out.append((TOPIC_DECISIONS, report_id, envelope.encode(decision(report_id, "urgent", f"MRN-{report_id[:10]}"))))
        out.append((TOPIC_REFERRAL_EVENTS, report_id, envelope.encode(booked_snapshot(report_id))))
    return out


SERVICES = {
    "triage": ("services.triage", [TOPIC_REPORTS], triage_backlog),
    "referral": ("services.referral", [TOPIC_DECISIONS], referral_backlog),
    "intake": ("services.intake", [TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS], intake_backlog),
}


def handlers_of(service: str) -> dict:
    if service == "triage":
        from services.triage import worker
        from services.triage.domain import default_rules_path, load_rules
        from services.triage.translations import load_catalogues

        return worker.handlers(load_rules(default_rules_path()), load_catalogues())
    if service == "referral":
        from services.referral import worker

        return worker.handlers()
    from services.intake import worker

    return worker.HANDLERS


# -- timing ----------------------------------------------------------------------------------------
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) of a process from /proc, with its reaped children's if asked;
    0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / _CLOCK_TICKS


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def pg_cpu(pg) -> float:
    """CPU seconds so far of the cluster: the postmaster, its children alive, and those reaped."""
    postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
    return _proc_cpu(postmaster, children=True) + sum(_proc_cpu(c) for c in _children(postmaster))


def _cpu_now(pg, watcher_pid: int) -> tuple[float, float]:
    """(this process's CPU less the calling thread's, the cluster's less the watcher backend's)."""
    times = os.times()
    return times.user + times.system - time.thread_time(), pg_cpu(pg) - _proc_cpu(watcher_pid)


def _inbox_count(conn, service: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {service}.inbox").fetchone()[0]


def _unsent(conn, service: str) -> int:
    return conn.execute(f"SELECT count(*) FROM {service}.outbox WHERE sent_at IS NULL").fetchone()[0]


def drain(settings, pg, service: str, package: str, group: str, count: int,
          timeout_s: float) -> tuple[float, float, float, float]:
    """(events/s from the first inbox row to the last, seconds until the outbox was all sent,
    the worker's and PostgreSQL's CPU microseconds per event over the same window)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target():
        try:
            worker_module.run_worker(settings, migrations_package=package, handlers=handlers_of(service),
                                     stop=stop, group_id=group)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # The bench's own output stays readable: the worker logs as in production, to nowhere.
    with psycopg.connect(settings.database_url, autocommit=True) as conn, \
            mock.patch.object(worker_module, "configure_logging", lambda service: None):
        before = _inbox_count(conn, service)
        watcher = conn.info.backend_pid
        thread = threading.Thread(target=target, daemon=True, name=f"bench-{service}-worker")
        started = time.perf_counter()
        thread.start()
        try:
            first_at = first_count = None
            deadline = started + timeout_s
            while True:
                done = _inbox_count(conn, service) - before
                now = time.perf_counter()
                if done and first_at is None:
                    first_at, first_count = now, done
                    cpu_first = _cpu_now(pg, watcher)
                if done >= count:
                    break
                if now > deadline or errors:
                    raise RuntimeError(f"{service}: {done} of {count} drained in {timeout_s} s {errors}")
                time.sleep(0.05)  # the watcher's count(*) competes with the worker for the cores
            finished = time.perf_counter()
            cpu_last = _cpu_now(pg, watcher)
            while _unsent(conn, service) and time.perf_counter() < deadline:
                time.sleep(0.05)
            published = time.perf_counter() - started
        finally:
            stop.set()
            thread.join(timeout=60)
    events = count - first_count
    rate = events / (finished - first_at) if finished > first_at else float("nan")
    worker_us, pg_us = ((last - first) * 1e6 / events if events else float("nan")
                        for first, last in zip(cpu_first, cpu_last))
    return rate, published, worker_us, pg_us


def ceiling(kafka, pg, security: dict, group: str, topics: list[str], count: int, timeout_s: float) -> float:
    """Events/s of a bare consumer that batch-inserts each poll's payloads, then commits offsets."""
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id="bench-drain-ceiling", max_poll_records=500,
                             fetch_max_wait_ms=100, **security)
    consumer.subscribe(topics)
    done = 0
    first_at = first_count = None
    try:
        with psycopg.connect(pg.admin_url()) as conn:
            conn.execute(f"CREATE TEMP TABLE {CEILING_TABLE} (event_key text, payload jsonb)")
            conn.commit()
            deadline = time.perf_counter() + timeout_s
            while done < count:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"ceiling: {done} of {count} in {timeout_s} s")
                for _tp, records in consumer.poll(timeout_ms=500).items():
                    with conn.cursor() as cur:
                        cur.executemany(f"INSERT INTO {CEILING_TABLE} VALUES (%s, %s::jsonb)",
                                        [(r.key.decode(), r.value.decode()) for r in records])
                    conn.commit()
                    consumer.commit()
                    done += len(records)
                    if first_at is None:
                        first_at, first_count = time.perf_counter(), done
            finished = time.perf_counter()
    finally:
        consumer.close(autocommit=False)
    return (count - first_count) / (finished - first_at)


MIN_EVENTS = 2_000


def measure(kafka, pg, services: tuple[str, ...] = ("triage", "referral", "intake"), scale: float = 1.0,
            timeout_s: float = 900.0, on_row=None) -> list[dict]:
    """One row per service: {service, events, events_per_s, ceiling_per_s, ratio, published_s,
    worker_cpu_us, pg_cpu_us, load (1-minute load average after the drain)}.
    `kafka`: a running infra.kafka.runner.LocalKafka (topics and ACLs made); `pg`: a running,
    bootstrapped infra.postgres server; `scale` multiplies the backlogs (COUNTS); `on_row`,
    if given, is called with each row as soon as it is measured."""
    rows = []
    for service in services:
        package, topics, build = SERVICES[service]
        # Rates are timed from the first batch seen committed to the last (the group's join
        # left out), so a backlog needs a few polls' worth (500 each) to give one at all.
        count = max(MIN_EVENTS, int(COUNTS[service] * scale))
        settings = service_settings(kafka, pg, service)
        with psycopg.connect(settings.database_url) as conn:
            apply_migrations(conn, service, package)
        security = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                    "sasl_plain_username": service, "sasl_plain_password": settings.kafka_password}
        run = uuid.uuid4().hex[:8]
        worker_group, ceiling_group = f"clinic-{service}-bench-{run}", f"clinic-{service}-bench-ceiling-{run}"
        for group in (worker_group, ceiling_group):
            start_group_at_end(kafka, security, group, topics)
        produce_all(kafka, build(settings, count))
        ceiling_rate = ceiling(kafka, pg, security, ceiling_group, topics, count, timeout_s)
        rate, published, worker_us, pg_us = drain(settings, pg, service, package, worker_group, count, timeout_s)
        rows.append({"service": service, "events": count, "events_per_s": round(rate),
                     "ceiling_per_s": round(ceiling_rate), "ratio": round(rate / ceiling_rate, 2),
                     "published_s": round(published, 1), "worker_cpu_us": round(worker_us),
                     "pg_cpu_us": round(pg_us), "load": os.getloadavg()[0]})
        if on_row is not None:
            on_row(rows[-1])
    return rows


HEADER = (f"{'service':<10}{'events':>8}{'events/s':>10}{'ceiling/s':>11}{'ratio':>7}{'all published':>15}"
          f"{'worker us/ev':>14}{'pg us/ev':>10}{'load':>6}")


def print_row(r: dict) -> None:
    print(f"{r['service']:<10}{r['events']:>8}{r['events_per_s']:>10}{r['ceiling_per_s']:>11}{r['ratio']:>7}"
          f"{r['published_s']:>13} s{r['worker_cpu_us']:>14}{r['pg_cpu_us']:>10}{r['load']:>6.2f}", flush=True)


@contextlib.contextmanager
def local_infra():
    """A throwaway PostgreSQL and Kafka (as the tests' fixtures start them)."""
    from infra.kafka.runner import LocalKafka
    from infra.postgres import free_port, running_postgres
    from tests.live_stack import kafka_lib_dir

    with tempfile.TemporaryDirectory(prefix="clinic-bench-drain-") as tmp:
        state = Path(tmp)
        state.chmod(0o711)  # a non-root PostgreSQL user must reach its folder
        with running_postgres(state_dir=state) as pg:
            broker = LocalKafka(state, port=free_port(), controller_port=free_port(), lib_dir=kafka_lib_dir())
            with broker.running():
                yield broker, pg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", default="triage,referral,intake")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the backlogs")
    args = parser.parse_args()
    with local_infra() as (kafka, pg):
        print(HEADER, flush=True)
        measure(kafka, pg, tuple(args.services.split(",")), args.scale, on_row=print_row)


if __name__ == "__main__":
    main()
