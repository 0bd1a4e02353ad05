"""The faults, one at a time, each with its own measurements, while the load runs.

Every fault ends when the stack has recovered: every process is back (the supervisor or
gunicorn restarted what died), every API answers /readyz, every consumer group is stable
with all its partitions assigned, and a new (canary) report reaches its final status.
"Time to recover" is from the fault to that moment.

To keep PostgreSQL or the broker down for a while although the supervisor restarts them,
the suite kills it and then holds its port: a socket that listens there and resets every
connection. The supervisor's restart then fails ("port ... is already in use"), is logged
and backed off like any failed start, and clients see what they would see of a dead
server (connection refused/reset at once). When the port is let go, the next restart
attempt (at the supervisor's backoff) succeeds.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from . import first_final, hops, kafka_probe
from .kafka_probe import GROUPS, Poison
from .load import Kiosk, LoadDriver
from .procs import SERVICES, Proc, StackProcesses, environ_of

FINAL = {"referred", "waitlisted", "closed"}


@dataclass
class Phase:
    name: str
    started: float = field(default_factory=time.time)
    ended: float | None = None
    recover_s: float | None = None   # until every process is back and ready
    canary_s: float | None = None    # then: a new report's time to its final status
    details: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    poisons: list[Poison] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)  # supervisor roles whose restart we expect
    figures: dict[str, str] = field(default_factory=dict)  # a broker fault's, for the broker table


@dataclass
class Ctx:
    stack: object                      # tests.conftest.LiveStack
    procs: StackProcesses
    driver: LoadDriver
    canary_kiosk: Kiosk
    staff_token: str
    admin_url: str
    bootstrap: str
    run_id: str
    recover_timeout: float
    say: Callable[[str], None]
    probe_report: str | None = None    # an acknowledged report id, for DB-backed API probes
    extra_members: dict[str, int] = field(default_factory=dict)
    extra_procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base_url(self) -> dict[str, str]:
        return self.stack.base_url


# -- waiting ---------------------------------------------------------------------------
def _http(session: requests.Session, method: str, url: str, **kwargs) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        response = session.request(method, url, timeout=(3, 20), **kwargs)
        return response.status_code, time.monotonic() - started
    except requests.RequestException as exc:
        return type(exc).__name__, time.monotonic() - started


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    return session


def not_ready(ctx: Ctx) -> list[str]:
    """What keeps the stack from being whole and ready right now (empty: nothing)."""
    gaps = ctx.procs.missing()
    with _session() as session:
        for svc in SERVICES:
            status, _ = _http(session, "GET", f"{ctx.base_url[svc]}/readyz")
            if status != 200:
                gaps.append(f"{svc} /readyz: {status}")
    if gaps:
        return gaps
    try:
        states = kafka_probe.describe_groups(ctx.bootstrap)
    except Exception as exc:
        return [f"consumer groups: {type(exc).__name__}"]
    for group in GROUPS:
        state = states.get(group)
        want = 1 + ctx.extra_members.get(group, 0)
        if state is None or state.state != "Stable" or state.members != want or not state.fully_assigned:
            gaps.append(f"{group}: {state.state if state else 'absent'}, "
                        f"{state.members if state else 0}/{want} members")
    return gaps


def wait_until(what: str, predicate: Callable[[], object], timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # a probe failing while things are down is expected
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(interval)


def wait_whole(ctx: Ctx) -> None:
    gaps: list[str] = []

    def whole():
        nonlocal gaps
        gaps = not_ready(ctx)
        return not gaps

    try:
        wait_until("every process back and ready", whole, ctx.recover_timeout, interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still missing: {gaps}") from None


def canary(ctx: Ctx) -> float:
    """An urgent report from a new patient, sent now; seconds until its final status."""
    started = time.monotonic()
    sub = ctx.driver.submit_now(ctx.canary_kiosk, "urgent")
    if not sub.acked:
        raise AssertionError(f"canary report not acknowledged: {sub.errors}")
    ctx.probe_report = ctx.probe_report or sub.report_id
    headers = {"Authorization": f"Bearer {ctx.canary_kiosk.key}"}
    last = {}

    def final():
        nonlocal last
        response = session.get(f"{ctx.base_url['intake']}/v1/reports/{sub.report_id}", headers=headers, timeout=10)
        if response.status_code == 200:
            last = response.json()
            return last["status"] in FINAL
        return False

    with _session() as session:
        try:
            wait_until(f"canary report {sub.report_id} to reach its final status", final, ctx.recover_timeout, 0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen {last}") from None
    return time.monotonic() - started


def recover(ctx: Ctx, phase: Phase, t0: float) -> None:
    wait_whole(ctx)
    phase.recover_s = time.monotonic() - t0
    phase.canary_s = canary(ctx)


# -- holding a port ------------------------------------------------------------------------
class PortHolder:
    """Listen on a port and reset every connection: the port is taken, nothing answers."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.port = port
        self.host = host
        self.sock: socket.socket | None = None
        self.resets = 0

    def try_take(self) -> bool:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT leftovers
        try:
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError:
            sock.close()
            return False
        self.sock = sock
        threading.Thread(target=self._reset_all, args=(sock,), daemon=True, name=f"hold-{self.port}").start()
        return True

    def _reset_all(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.resets += 1

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def kill_and_hold(ctx: Ctx, role: str, port: int, timeout: float = 15.0, victim: Proc | None = None) -> PortHolder:
    """SIGKILL the role's process (its first, or `victim`) and take its port before the
    supervisor restarts it (killing any restart that got there first)."""
    holder = PortHolder(port)
    deadline = time.monotonic() + timeout
    if victim is None:
        victim = ctx.procs.kill(role)
    else:
        os.kill(victim.pid, signal.SIGKILL)
    while not holder.try_take():
        if time.monotonic() > deadline:
            raise AssertionError(f"could not take {role}'s port {port} within {timeout:g}s")
        # A restart of the same process: with three brokers, of the same node (its
        # properties file, the last argument), not one of the other two.
        current = next((proc for proc in ctx.procs.snapshot()[role]
                        if proc.pid != victim.pid and (role != "kafka" or proc.argv[-1] == victim.argv[-1])), None)
        if current is not None:
            os.kill(current.pid, signal.SIGKILL)
            victim = current
        time.sleep(0.02)
    return holder


# -- the faults ------------------------------------------------------------------------------
def kill_process(ctx: Ctx, role: str, supervised: str | None) -> Phase:
    """SIGKILL one process of a role; `supervised` names the supervisor's child that dies
    with it (None for a gunicorn worker, which its master replaces)."""
    phase = Phase(f"kill {role}")
    group = f"clinic-{role.removesuffix('-worker')}" if role.endswith("-worker") else None
    # A killed worker stays in its consumer group (looking healthy) until its session
    # times out: the group has recovered only once that member is gone.
    dead_members = set(kafka_probe.describe_groups(ctx.bootstrap)[group].assigned) if group else set()
    t0 = time.monotonic()
    victim = ctx.procs.kill(role)
    ctx.procs.wait_gone(victim.pid)
    phase.details.append(f"SIGKILL pid {victim.pid} ({victim.cmdline[:60]})")
    if supervised:
        phase.killed.append(supervised)
    if group:
        wait_until(f"the killed worker to leave {group}",
                   lambda: not dead_members & set(kafka_probe.describe_groups(ctx.bootstrap)[group].assigned),
                   ctx.recover_timeout, 0.25)
        phase.details.append(f"the dead member left {group} {time.monotonic() - t0:.1f}s after the kill")
    recover(ctx, phase, t0)
    return phase


def broker_down(ctx: Ctx, seconds: float) -> Phase:
    phase = Phase(f"Kafka down {seconds:g}s")
    phase.killed.append("kafka")
    before = kafka_probe.committed_offsets(ctx.bootstrap)
    # The first broker (with CLINIC_KAFKA_BROKERS=3, node 1, which procs.kill takes first).
    port = int(ctx.bootstrap.split(",")[0].rsplit(":", 1)[1])
    t0 = time.monotonic()
    wall0 = time.time()
    holder = kill_and_hold(ctx, "kafka", port)
    max_unsent = 0
    with ctx.driver.unthrottled(), psycopg.connect(ctx.admin_url, autocommit=True) as conn:
        probe = ctx.driver.submit_now(ctx.canary_kiosk, "specialist")  # one more, timed
        while time.monotonic() - t0 < seconds:
            unsent = conn.execute("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL").fetchone()[0]
            max_unsent = max(max_unsent, unsent)
            time.sleep(0.5)
    holder.release()
    if probe.acked:
        phase.details.append(f"a report sent right after the broker died was acknowledged in "
                             f"{probe.acked_at - probe.first_attempt:.2f}s")

    def back() -> bool:  # the outbox goes on growing until then
        nonlocal max_unsent
        max_unsent = max(max_unsent, _outbox_unsent_intake(ctx.admin_url))
        return kafka_probe.broker_ready(ctx.bootstrap)

    wait_until("the broker to come back", back, ctx.recover_timeout, 0.5)
    t_ready = time.monotonic()
    acked_during = sum(1 for s in list(ctx.driver.submissions) if s.acked_at and wall0 <= s.acked_at <= time.time())
    phase.details.append(f"broker down {t_ready - t0:.1f}s (port held {seconds:g}s, then the supervisor's backoff)")
    phase.details.append(f"{acked_during} reports acknowledged (202) while it was down; "
                         f"intake outbox grew to {max_unsent} unsent until it was back")
    if acked_during == 0:
        phase.failures.append("no report was acknowledged while the broker was down")
    wait_whole(ctx)
    phase.recover_s = time.monotonic() - t0
    # Hold new reports while measuring, so that "lag zero" is the backlog drained, not a race.
    ctx.driver.pause()
    try:
        lag_zero = _wait_drained(ctx)
    finally:
        ctx.driver.resume()
    phase.details.append(f"outboxes drained and lag zero for {', '.join(GROUPS)} {lag_zero - t_ready:.1f}s "
                         f"after the broker was ready")
    # The same figures as the cluster's broker faults (tests/chaos/cluster_faults.py), to print
    # beside them; one broker's only: on the cluster "back" here is any broker answering, and
    # the cluster faults measure node by node.
    if "," not in ctx.bootstrap:
        sent, p50, p99, final_during = report_to_final(ctx, wall0, wall0 + (t_ready - t0), ctx.recover_timeout)
        phase.figures.update({"down": f"{t_ready - t0:.1f}s", "new leaders in": "- (no other broker)",
                              "acked while down": str(acked_during), "outbox peak": str(max_unsent),
                              "final p50 / p99": f"{p50:.1f}s / {p99:.1f}s" if sent else "-",
                              "final while down": f"{final_during}/{sent}"})
    after = kafka_probe.committed_offsets(ctx.bootstrap)
    regressed = [(g, tp, offset, after.get(g, {}).get(tp)) for g, offsets in before.items()
                 for tp, offset in offsets.items() if after.get(g, {}).get(tp, -1) < offset]
    if regressed:
        phase.failures.append(f"committed offsets went back after the restart: {regressed[:3]}")
    else:
        phase.details.append("consumers resumed from their committed offsets (none went back)")
    phase.canary_s = canary(ctx)
    return phase


# -- report-to-final while a broker is down -----------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def report_to_final(ctx: Ctx, wall0: float, wall1: float, timeout: float,
                    explain: list[str] | None = None) -> tuple[int, float, float, int]:
    """Reports first sent in [wall0, wall1] and acknowledged: wait until each is final; their
    count, p50 and p99 of submitted_at -> first final (the decision for self care, else the
    referral's arrival, in the intake's status view: first_final.py), and how many became final
    before wall1 (still while the broker was down). `explain`: gets the hops of the slowest
    few (hops.py)."""
    ids = [s.report_id for s in list(ctx.driver.submissions) if s.acked and wall0 <= s.first_attempt <= wall1]
    if not ids:
        return 0, float("nan"), float("nan"), 0
    rows: list = []

    def all_final():
        nonlocal rows
        with psycopg.connect(ctx.admin_url, connect_timeout=3) as conn:
            rows = first_final.finals(conn, ids)
        return len(rows) == len(ids)

    wait_until(f"the {len(ids)} reports sent while a broker was down to be final", all_final, timeout, 1.0)
    took = [final - submitted for submitted, final, _id in rows]
    during = sum(1 for _submitted, final, _id in rows if final <= wall1)
    if explain is not None:
        slowest = sorted(rows, key=lambda row: row[0] - row[1])[:3]
        with psycopg.connect(ctx.admin_url, connect_timeout=3) as conn:
            explain += [hops.describe(conn, report_id, final - submitted) for submitted, final, report_id in slowest]
    return len(ids), percentile(took, 0.5), percentile(took, 0.99), during


def _outbox_unsent_intake(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        return conn.execute("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL").fetchone()[0]


def _outbox_unsent(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {svc}.outbox WHERE sent_at IS NULL").fetchone()[0]
                   for svc in SERVICES)


def _wait_drained(ctx: Ctx, timeout: float | None = None) -> float:
    """Until every outbox is sent and every group's lag is zero (twice in a row); the time."""
    streak = 0

    def drained():
        nonlocal streak
        clear = _outbox_unsent(ctx.admin_url) == 0 and not any(kafka_probe.lag(ctx.bootstrap).values())
        streak = streak + 1 if clear else 0
        return streak >= 2

    wait_until("outboxes drained and consumer lag zero", drained, timeout or ctx.recover_timeout, 0.25)
    return time.monotonic()


def database_down(ctx: Ctx, seconds: float, inject: Callable[[str], list[Poison]]) -> Phase:
    phase = Phase(f"PostgreSQL down {seconds:g}s")
    phase.killed.append("postgres")
    port = int(ctx.stack.env["CLINIC_PG_PORT"])
    t0 = time.monotonic()
    holder = kill_and_hold(ctx, "postgres", port)
    # The backends of a SIGKILLed postmaster finish what they were doing (a commit, an answer)
    # before they notice and exit: the database is down once they are gone.
    data_dir = Path(ctx.stack.state_dir) / "pg" / "data"
    wait_until("the killed postmaster's backends to exit", lambda: not leftover_backends(data_dir), 30, 0.02)
    phase.details.append(f"its backends were gone {time.monotonic() - t0:.2f}s after the postmaster's SIGKILL")
    phase.poisons += inject("dbdown")  # consumers must wait for the database, then park them once
    # Each API (a DB-backed request, and /readyz) is probed in its own thread, so that slow
    # answers cannot stretch the outage.
    records: list[tuple[str, int | str, float, float]] = []  # (what, answer, seconds, ended at)
    released = threading.Event()

    def probe(what: str, url: str, headers: dict) -> None:
        with _session() as session:
            while not released.is_set():
                status, took = _http(session, "GET", url, headers=headers)
                records.append((what, status, took, time.monotonic()))
                released.wait(0.5)

    threads = []
    for svc, (url, headers) in _db_probes(ctx).items():
        threads.append(threading.Thread(target=probe, args=(svc, url, headers), daemon=True))
        threads.append(threading.Thread(target=probe, args=(f"{svc} /readyz", f"{ctx.base_url[svc]}/readyz", {}),
                                        daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, seconds - (time.monotonic() - t0)))
    holder.release()
    released.set()
    wait_until("PostgreSQL to come back", lambda: _pg_up(ctx.admin_url), ctx.recover_timeout, 0.25)
    t_pg = time.monotonic()
    phase.details.append(f"PostgreSQL down {t_pg - t0:.1f}s (port held {seconds:g}s, then the supervisor's backoff)")
    back = {}
    with _session() as session:
        for svc, (url, headers) in _db_probes(ctx).items():
            def serving(url=url, headers=headers):
                status, _ = _http(session, "GET", url, headers=headers)
                return isinstance(status, int) and status < 500
            wait_until(f"{svc} API to serve again", serving, ctx.recover_timeout, 0.2)
            back[svc] = time.monotonic() - t_pg
    phase.details.append("APIs serving again after PostgreSQL was back: "
                         + ", ".join(f"{svc} {s:.1f}s" for svc, s in back.items()))
    for thread in threads:
        thread.join(timeout=60)
    # Answers given while it was down (a request still waiting when it came back may succeed).
    during = [(what, status, took) for what, status, took, ended in records if ended < t_pg]
    answers = Counter(f"{what} {status}" for what, status, _took in during)
    worst = max((took for _w, _s, took in during), default=0.0)
    phase.details.append(f"while down, the APIs answered {dict(sorted(answers.items()))}; slowest answer {worst:.1f}s")
    if not during:
        phase.failures.append("no API answer was seen while the database was down")
    if worst > 15:
        phase.failures.append(f"an API took {worst:.1f}s to answer while the database was down")
    bad = sorted({a for a in answers if not a.endswith(" 503")})
    if bad:
        phase.failures.append(f"while the database was down, expected 503 everywhere, got {bad}")
    recover(ctx, phase, t0)
    return phase


def leftover_backends(data_dir: Path) -> list[int]:
    """Processes of a PostgreSQL cluster still running: their working folder is its data folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(data_dir):
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile, or a zombie
                continue
    return found


def _db_probes(ctx: Ctx) -> dict[str, tuple[str, dict]]:
    staff = {"Authorization": f"Bearer {ctx.staff_token}"}
    report = ctx.probe_report
    return {
        "intake": (f"{ctx.base_url['intake']}/v1/reports/{report}", {"Authorization": f"Bearer {ctx.canary_kiosk.key}"}),
        "triage": (f"{ctx.base_url['triage']}/v1/decisions/{report}", staff),
        "referral": (f"{ctx.base_url['referral']}/v1/referrals?limit=1", staff),
    }


def _pg_up(admin_url: str) -> bool:
    try:
        with psycopg.connect(admin_url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def scale_out(ctx: Ctx, service: str, extra: int, inject: Callable[[str], list[Poison]]) -> Phase:
    """`extra` more workers of one service in its consumer group; SIGKILL one of them."""
    group = f"clinic-{service}"
    phase = Phase(f"{extra} extra {service} workers, kill one")
    worker = ctx.procs.one(f"{service}-worker")
    env = environ_of(worker.pid)
    env.pop("CLINIC_METRICS_BIND", None)  # the stack's worker serves on that port already
    logs = Path(ctx.stack.state_dir) / "logs"
    for n in range(extra):
        with open(logs / f"chaos-extra-{service}-worker-{n}.log", "ab") as out:
            ctx.extra_procs.append(subprocess.Popen(list(worker.argv), env=env, cwd=os.getcwd(),
                                                    stdin=subprocess.DEVNULL, stdout=out,
                                                    stderr=subprocess.STDOUT, process_group=0))
    ctx.extra_members[group] = extra
    wait_whole(ctx)
    state = kafka_probe.describe_groups(ctx.bootstrap)[group]
    sizes = sorted(len(p) for p in state.assigned.values())
    phase.details.append(f"{state.members} members share the partitions: {sizes}")
    if min(sizes) == 0:
        phase.failures.append(f"a member of {group} got no partition: {sizes}")
    phase.poisons += inject("rebalance")
    victim = ctx.extra_procs.pop(0)
    t0 = time.monotonic()
    victim.kill()
    victim.wait()
    ctx.extra_members[group] = extra - 1

    def rebalanced():
        s = kafka_probe.describe_groups(ctx.bootstrap)[group]
        return s.state == "Stable" and s.members == extra and s.fully_assigned

    wait_until(f"{group} to rebalance after a member died", rebalanced, ctx.recover_timeout, 0.25)
    took = time.monotonic() - t0
    from services.common.kafka_io import SESSION_TIMEOUT_MS
    phase.details.append(f"SIGKILL of one extra worker: its partitions went to the others in {took:.1f}s "
                         f"(session timeout {SESSION_TIMEOUT_MS / 1000:g}s)")
    recover(ctx, phase, t0)
    # The others leave cleanly (SIGTERM: the consumer leaves its group at once).
    for proc in ctx.extra_procs:
        proc.terminate()
    for proc in ctx.extra_procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            phase.failures.append(f"extra worker {proc.pid} ignored SIGTERM for 30 s")
    ctx.extra_procs.clear()
    ctx.extra_members[group] = 0
    wait_whole(ctx)
    return phase


def stop_extras(ctx: Ctx) -> None:
    for proc in ctx.extra_procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ctx.extra_procs.clear()
