"""The fault suite: steady load, every fault one at a time, then the checks and the table.

    result = run_suite(stack, SHORT)          # inside `make test` (tests/e2e/test_chaos_short.py)
    result = run_suite(stack, full_profile(100_000, 30))   # `make chaos`
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests

from services.common import envelope
from services.common.kafka_io import make_producer
from tests.kafka_support import admin_security
from services.common.settings import TOPIC_REPORTS, dlq_topic

from . import checker, cluster_faults, faults, first_final, kafka_probe, report
from .faults import Ctx, Phase
from .load import Kiosk, LoadDriver, ReportFactory
from .procs import SERVICES, StackProcesses

KIOSKS = 3


@dataclass(frozen=True)
class Profile:
    name: str
    rate: float                  # reports per second (target)
    threads: int                 # kiosk client threads
    broker_down_s: float
    db_down_s: float
    warmup_s: float
    gap_s: float                 # steady load between two faults
    recover_timeout: float
    slots: int
    extra_workers: int = 2
    scale_service: str = "referral"
    max_reports: int | None = None
    minutes: float | None = None  # repeat the faults until this much time has passed
    api_sample: int | None = None
    max_backlog: int | None = None
    drain_timeout: float = 300.0
    seed: int = 6
    # With three brokers (CLINIC_KAFKA_BROKERS=3): the cluster faults (tests/chaos/cluster_faults.py)
    leader_hold_s: float = 0.0   # the leaders' broker kept down at least this long (and until new leaders)
    cluster_down_s: float = 60.0  # one broker held down
    cluster_only: bool = False   # only the cluster faults (the short cluster variant in make test)


SHORT = Profile("short", rate=2.5, threads=4, broker_down_s=6, db_down_s=5, warmup_s=6, gap_s=1,
                recover_timeout=150, slots=120)


# The short cluster variant (tests/e2e/test_chaos_cluster_short.py): the three cluster faults only,
# the hold-down short, a few hundred reports. The leaders' broker is kept down 20 s: the check that
# reports still reach their final status while it is down needs a window longer than the pipeline
# takes to resume on the new leaders (first final 13-15 s after the kill, docs/kafka-cluster.md).
# Released as soon as its partitions had new leaders (8.6 s), a supervisor's restart brought it
# back after 17.2 s in one CI run, before the consumers had resumed (17.6 s): a race, not a stop.
CLUSTER_SHORT = Profile("cluster short", rate=3, threads=4, broker_down_s=6, db_down_s=5, warmup_s=6, gap_s=1,
                        recover_timeout=150, slots=120, leader_hold_s=20, cluster_down_s=15, cluster_only=True)


def full_profile(reports: int, minutes: float, rate: float = 60.0, threads: int = 24) -> Profile:
    return Profile("full", rate=rate, threads=threads, broker_down_s=30, db_down_s=30, warmup_s=30, gap_s=45,
                   recover_timeout=300, slots=2000, max_reports=reports, minutes=minutes, api_sample=500,
                   max_backlog=max(2000, int(rate * 60)), drain_timeout=1800, leader_hold_s=15, cluster_down_s=60)


@dataclass
class Result:
    ok: bool
    text: str
    phases: list[Phase]
    verdict: checker.Verdict | None
    failures: list[str] = field(default_factory=list)


def _log(message: str) -> None:
    print(f"{datetime.now():%H:%M:%S} [chaos] {message}", file=sys.stderr, flush=True)


# -- setting up ---------------------------------------------------------------------------------
def _staff_post(url: str, token: str, body) -> dict:
    response = requests.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if response.status_code != 201:
        raise AssertionError(f"POST {url}: HTTP {response.status_code} {response.text[:300]}")
    return response.json()


def add_slots(stack, admin_token: str, run_id: str, count: int) -> None:
    """Providers with 20-minute slots from the next hour on: the first urgent and routine
    referrals get booked, the later ones waitlisted."""
    referral = stack.base_url["referral"]
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    providers = max(1, count // 500)
    per_provider = count // providers
    for n in range(providers):
        provider = _staff_post(f"{referral}/v1/providers", admin_token, {
            "name": f"Chaos Pain Clinic {run_id}-{n}", "specialty": "pain_management", "location": f"Room {n}"})
        slots = [{"provider_id": provider["provider_id"],
                  "start": (start + timedelta(minutes=20 * i)).isoformat(),
                  "end": (start + timedelta(minutes=20 * i + 20)).isoformat()} for i in range(per_provider)]
        for i in range(0, len(slots), 500):
            _staff_post(f"{referral}/v1/slots", admin_token, slots[i:i + 500])


def _kiosk_ids(admin_url: str, names: list[str]) -> dict[str, str]:
    with psycopg.connect(admin_url) as conn:
        return dict(conn.execute("SELECT name, kiosk_id::text FROM intake.kiosks WHERE name = ANY(%s)",
                                 (names,)).fetchall())


def _backlog_fn(admin_url: str, kiosk_ids: list[str]) -> Callable[[], int]:
    def backlog() -> int:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            return conn.execute(
                "SELECT count(*) FROM intake.reports WHERE kiosk_id = ANY(%s::uuid[])"
                " AND NOT (care_level = 'self_care' OR referral IS NOT NULL)", (kiosk_ids,)).fetchone()[0]
    return backlog


# -- the run ------------------------------------------------------------------------------------
def fault_plan(ctx: Ctx, profile: Profile, inject) -> list[tuple[str, Callable[[], Phase]]]:
    """Every fault once. The two kills of the broker, and of PostgreSQL, are far apart: the
    supervisor resets its backoff only for a process that stayed up 60 s, so a second kill
    sooner would measure its longer backoff rather than the fault. The long run starts with
    the outages, so that they are in even when the machine is slow and time runs out."""
    infra_kills = [
        ("kill kafka", lambda: faults.kill_process(ctx, "kafka", "kafka")),
        ("kill postgres", lambda: faults.kill_process(ctx, "postgres", "postgres")),
    ]
    service_kills = []
    for svc in SERVICES:
        service_kills.append((f"kill {svc}-api worker",
                              lambda svc=svc: faults.kill_process(ctx, f"{svc}-api-workers", None)))
        service_kills.append((f"kill {svc}-api master",
                              lambda svc=svc: faults.kill_process(ctx, f"{svc}-api", f"{svc}-api")))
    for svc in SERVICES:
        service_kills.append((f"kill {svc}-worker",
                              lambda svc=svc: faults.kill_process(ctx, f"{svc}-worker", f"{svc}-worker")))
    outages = [
        ("kafka down", lambda: faults.broker_down(ctx, profile.broker_down_s)),
        ("scale out", lambda: faults.scale_out(ctx, profile.scale_service, profile.extra_workers, inject)),
        ("postgres down", lambda: faults.database_down(ctx, profile.db_down_s, inject)),
    ]
    cluster = []
    if int(ctx.stack.env.get("CLINIC_KAFKA_BROKERS") or 1) == 3:
        # Held down: the broker up longest, whose supervisor backoff is reset (a node killed or
        # restarted less than 60 s before would come back later than the fault's hold).
        cluster = [
            ("leaders' broker SIGKILL", lambda: cluster_faults.leader_kill(ctx, profile.leader_hold_s)),
            ("rolling restart", lambda: cluster_faults.rolling_restart(ctx)),
            (f"broker down {profile.cluster_down_s:g}s",
             lambda: cluster_faults.broker_held_down(ctx, profile.cluster_down_s)),
        ]
    if profile.cluster_only:
        return cluster
    if profile.minutes:
        return outages + cluster + service_kills + infra_kills
    return infra_kills + service_kills + outages + cluster


def run_suite(stack, profile: Profile, say: Callable[[str], None] = _log) -> Result:
    run_id = uuid.uuid4().hex[:6]
    admin_url = stack.settings().admin_database_url
    first_final.install(admin_url)  # before any report: report-to-final figures read it
    bootstrap = stack.env["CLINIC_KAFKA_BOOTSTRAP"]
    procs = StackProcesses.of(stack)
    suite_started = time.monotonic()

    names = [f"chaos-{run_id}-{i}" for i in range(KIOSKS)]
    keys = {name: stack.kiosk_key(name) for name in names}
    ids = _kiosk_ids(admin_url, names)
    admin_token = stack.staff_token("admin")
    scheduler_token = stack.staff_token("scheduler")
    add_slots(stack, admin_token, run_id, profile.slots)
    factory = ReportFactory(profile.seed, run_id)
    driver = LoadDriver(stack.base_url["intake"], {n: keys[n] for n in names[1:]}, factory,
                        rate=profile.rate, threads=profile.threads, max_reports=profile.max_reports,
                        backlog_fn=_backlog_fn(admin_url, list(ids.values())) if profile.max_backlog else None,
                        max_backlog=profile.max_backlog)
    ctx = Ctx(stack=stack, procs=procs, driver=driver, canary_kiosk=Kiosk(stack.base_url["intake"], names[0], keys[names[0]]),
              staff_token=scheduler_token, admin_url=admin_url, bootstrap=bootstrap, run_id=run_id,
              recover_timeout=profile.recover_timeout, say=say)
    poisons: list[kafka_probe.Poison] = []

    def inject(label: str) -> list[kafka_probe.Poison]:
        batch = kafka_probe.inject_poison(bootstrap, run_id, label)
        poisons.extend(batch)
        say(f"injected {len(batch)} poison messages ({label})")
        return batch

    phases: list[Phase] = []
    failures: list[str] = []
    faults.wait_whole(ctx)
    say(f"run {run_id}: {profile.name} profile, {profile.rate:g} reports/s target, {profile.threads} kiosk threads")
    steady = Phase("steady load, poison injected")
    phases.append(steady)
    driver.start()
    try:
        steady.poisons += inject("warm")
        faults.canary(ctx)
        time.sleep(profile.warmup_s)
        cycle = 0
        stop_at = suite_started + profile.minutes * 60 if profile.minutes else None

        def time_is_up() -> bool:
            return driver.done or bool(stop_at and time.monotonic() > stop_at - 60)

        while not time_is_up():
            cycle += 1
            for name, fault in fault_plan(ctx, profile, inject):
                if time_is_up():
                    break
                say(f"fault: {name}")
                started = time.time()
                try:
                    phase = fault()
                except AssertionError as exc:
                    phase = Phase(name, started=started)
                    phase.failures.append(str(exc))
                    say(f"fault {name} FAILED: {exc}")
                phases[-1].ended = phase.started
                phases.append(phase)
                if cycle > 1:
                    phase.name += f" (#{cycle})"
                say(f"{phase.name}: recovered in {phase.recover_s or float('nan'):.1f}s, a new report final "
                    f"{phase.canary_s or float('nan'):.1f}s later; {len(driver.submissions)} reports so far")
                if phase.failures:
                    try:
                        faults.wait_whole(ctx)
                    except AssertionError as exc:
                        failures.append(f"stack did not recover after {name}: {exc}")
                        stop_at = time.monotonic()  # no point going on
                        break
                time.sleep(profile.gap_s)
            if not stop_at:
                break  # once through the plan
        if stop_at:  # steady load to the end of the time budget
            while not driver.done and time.monotonic() < stop_at:
                time.sleep(1)
    finally:
        say(f"stopping the load ({len(driver.submissions)} reports)")
        phases[-1].ended = time.time()
        try:
            driver.stop()
        except AssertionError as exc:
            failures.append(str(exc))
        faults.stop_extras(ctx)
        ctx.canary_kiosk.close()
    load_s = time.monotonic() - suite_started

    # Drain: everything acknowledged reaches its end, every outbox is sent, lag is zero.
    drain_started = time.monotonic()
    try:
        faults.wait_until("every acknowledged report to be final", lambda: _backlog_fn(admin_url, list(ids.values()))() == 0,
                          profile.drain_timeout, 1.0)
        faults._wait_drained(ctx, profile.drain_timeout)
        faults.wait_whole(ctx)
    except AssertionError as exc:
        failures.append(f"after the load: {exc}")
    say(f"drained in {time.monotonic() - drain_started:.1f}s")

    failures += _check_supervision(Path(stack.state_dir) / "logs" / "stack.log", phases)
    dead_letters = [p for topic in kafka_probe.TOPICS for p in kafka_probe.read_dlq(bootstrap, topic)]
    verdict = checker.check(admin_url=admin_url, intake_url=stack.base_url["intake"],
                            kiosks={n: (ids[n], keys[n]) for n in names}, submissions=driver.submissions,
                            dead_letters=dead_letters, poisons=poisons, api_sample=profile.api_sample,
                            seed=profile.seed)
    try:
        failures += _check_replay(ctx, poisons, verdict)
    except AssertionError as exc:
        failures.append(f"dlq replay: {exc}")
    for phase in phases:
        failures += [f"{phase.name}: {f}" for f in phase.failures]

    acked = sum(1 for s in driver.submissions if s.acked)
    title = (f"Fault suite ({profile.name}): {len(driver.submissions)} reports sent, {acked} acknowledged, "
             f"in {load_s / 60:.1f} min of load ({acked / load_s:.1f} acknowledged/s; load held back "
             f"{driver.throttled_s:.0f}s by the backlog limit), drain {time.monotonic() - drain_started:.0f}s")
    text = report.render(phases, verdict, dead_letters, title)
    if failures:
        text += "\n" + "\n".join(f"- FAILED: {f}" for f in failures)
    ok = verdict.ok and not failures
    text += f"\nRESULT: {'PASS' if ok else 'FAIL'}"
    return Result(ok, text, phases, verdict, failures)


def _check_supervision(stack_log: Path, phases: list[Phase]) -> list[str]:
    """Each supervised process we killed was restarted by `make run`, with its log line."""
    text = stack_log.read_text(errors="replace")
    # With CLINIC_KAFKA_BROKERS=3 the broker the faults kill (node 1) is supervised as kafka-1.
    restarts = Counter("kafka" if name == "kafka-1" else name
                       for name in re.findall(r"restarting (\S+) \(exit code -9\)", text))
    wanted = Counter(name for phase in phases for name in phase.killed)
    problems = [f"stack.log shows {restarts[name]} 'restarting {name}' line(s) after SIGKILL, expected {count}"
                for name, count in wanted.items() if restarts[name] < count]
    backoff = re.findall(r"restarting (\S+) \(could not start: [^)]*\) in (\S+)s", text)
    if backoff:
        phases[-1].details.append("supervisor backoff while a port was held: "
                                  + ", ".join(f"{n} {d}s" for n, d in backoff[:12]))
    return problems


# -- dead-letter replay ---------------------------------------------------------------------------
def _clinic(ctx: Ctx, *args: str) -> str:
    clinic = Path(sys.executable).parent / "clinic"
    result = subprocess.run([str(clinic), *args], env=ctx.stack.env, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"clinic {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-500:]}")
    return result.stdout


def _check_replay(ctx: Ctx, poisons: list[kafka_probe.Poison], verdict: checker.Verdict) -> list[str]:
    """`clinic dlq list` shows the parked poison; `clinic dlq replay` sends the parked messages
    back once: an event already applied is skipped by the inbox, a still-bad one is parked again
    (once), and a second replay does not resend what the first one did."""
    problems = []
    ours = [p for p in poisons if p.topic == TOPIC_REPORTS]
    listing = _clinic(ctx, "dlq", "list", TOPIC_REPORTS)
    missing = [p.key for p in ours if p.key not in listing]
    if missing:
        problems.append(f"`clinic dlq list` does not show {missing}")
    # An event that was applied, parked as if a bug had refused it then: replaying it must not
    # decide the report a second time.
    applied = next((v for v in verdict.reports if v.sub.acked and not v.lost and not v.doubled), None)
    if applied is None:
        return problems + ["no report came through unharmed to replay"]
    report_id = applied.sub.report_id
    with psycopg.connect(ctx.admin_url) as conn:
        payload = conn.execute("SELECT payload FROM intake.outbox WHERE key = %s", (report_id,)).fetchone()[0]
    producer = make_producer(ctx.bootstrap, "chaos-replay-test", admin_security(ctx.bootstrap))
    try:
        producer.send(dlq_topic(TOPIC_REPORTS), key=report_id.encode(), value=envelope.encode(payload), headers=[
            ("traceparent", envelope.new_traceparent().encode()), ("dlq.error", b"simulated: a bug, since fixed"),
            ("dlq.error_type", b"RuntimeError"), ("dlq.original_topic", TOPIC_REPORTS.encode()),
            ("dlq.original_partition", b"-1"), ("dlq.original_offset", f"chaos-{report_id}".encode()),
            ("dlq.consumer_group", b"clinic-triage"),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode())]).get(timeout=30)
    finally:
        producer.close(timeout=5)
    before = len(kafka_probe.read_dlq(ctx.bootstrap, TOPIC_REPORTS))
    first = _clinic(ctx, "dlq", "replay", TOPIC_REPORTS)
    second = _clinic(ctx, "dlq", "replay", TOPIC_REPORTS, "--dry-run")
    match = re.search(r"(\d+) replayed before", second)
    if not match or int(match.group(1)) < before:
        problems.append(f"a second replay would resend: first {first.strip()!r}, then {second.strip()!r}")
    # The still-bad ones come back to the .dlq, once each, marked as replayed.
    keys = {p.key for p in ours}

    def reparked():
        again = [p for p in kafka_probe.read_dlq(ctx.bootstrap, TOPIC_REPORTS)
                 if p.key in keys and "dlq.replayed_from" in p.headers]
        return again if len(again) >= len(ours) else None

    again = faults.wait_until("replayed poison to be parked again", reparked, 120, 1.0)
    counts = Counter(p.key for p in again)
    if any(n != 1 for n in counts.values()) or set(counts) != keys:
        problems.append(f"replayed poison parked again {dict(counts)} (expected once each)")
    faults._wait_drained(ctx)
    with psycopg.connect(ctx.admin_url) as conn:
        decisions = conn.execute("SELECT count(*) FROM triage.decisions WHERE report_id = %s",
                                 (report_id,)).fetchone()[0]
        events = conn.execute("SELECT count(*) FROM triage.outbox WHERE key = %s", (report_id,)).fetchone()[0]
    if (decisions, events) != (1, 1):
        problems.append(f"replaying an applied event changed report {report_id}: {decisions} decisions, "
                        f"{events} decision events")
    ctx.say(f"dlq replay: {first.strip()}; then {second.strip()}")
    return problems


def dump_json(result: Result, path: Path) -> None:
    path.write_text(json.dumps({"ok": result.ok, "text": result.text, "failures": result.failures}, indent=2))
