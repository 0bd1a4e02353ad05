"""Find the processes of one running stack by reading /proc, never by a broad name.

Everything `python -m infra.stack` starts is its child (PostgreSQL's postmaster, the
Kafka JVM, each API's gunicorn master, each worker), and what those start (gunicorn
workers, PostgreSQL backends) are their children. Walking down from the supervisor's pid
(kept in <state>/stack.lock) therefore finds exactly this stack's processes, however
many other stacks run on the machine.
"""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("intake", "triage", "referral")
GUNICORN_WORKERS = 2  # services/common/gunicorn_conf.py


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: tuple[str, ...]

    @property
    def cmdline(self) -> str:
        return " ".join(self.argv)


def _read_proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":  # a zombie is dead, whatever its parent has not reaped yet
        return None
    argv = tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return Proc(pid=pid, ppid=int(fields[1]), argv=argv)


def all_processes() -> list[Proc]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            proc = _read_proc(int(entry))
            if proc is not None:
                found.append(proc)
    return found


def children_of(pid: int, procs: list[Proc] | None = None) -> list[Proc]:
    return [p for p in (procs if procs is not None else all_processes()) if p.ppid == pid]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            key, _, value = item.partition(b"=")
            env[key.decode()] = value.decode(errors="replace")
    return env


def alive(pid: int) -> bool:
    return _read_proc(pid) is not None


class StackProcesses:
    """Roles -> processes of the stack whose supervisor is `supervisor_pid`."""

    def __init__(self, supervisor_pid: int, state_dir: Path, brokers: int = 1, worker_replicas: int = 1):
        self.supervisor_pid = supervisor_pid
        self.state_dir = Path(state_dir)
        # How many processes a whole stack has of these roles (CLINIC_KAFKA_BROKERS,
        # CLINIC_WORKER_REPLICAS); one of every other.
        self.want = {"kafka": brokers, **{f"{svc}-worker": worker_replicas for svc in SERVICES}}

    @classmethod
    def of(cls, stack) -> StackProcesses:
        env = stack.env
        return cls(int((Path(stack.state_dir) / "stack.lock").read_text().split()[0]), stack.state_dir,
                   int(env.get("CLINIC_KAFKA_BROKERS") or 1), int(env.get("CLINIC_WORKER_REPLICAS") or 1))

    def snapshot(self) -> dict[str, list[Proc]]:
        """{"postgres": [...], "kafka": [...], "intake-api": [master], "intake-api-workers": [...],
        "intake-worker": [...], ...}; a missing role maps to []."""
        procs = all_processes()
        roles: dict[str, list[Proc]] = {name: [] for name in self.role_names()}
        data_dir = str(self.state_dir / "pg" / "data")
        for child in children_of(self.supervisor_pid, procs):
            argv = child.argv
            if argv and argv[0].endswith("/postgres") and data_dir in argv:
                roles["postgres"].append(child)
            elif any(a == "kafka.Kafka" for a in argv):
                roles["kafka"].append(child)
            elif "gunicorn" in child.cmdline:
                for svc in SERVICES:
                    if f"services.{svc}.app:create_app()" in argv:
                        roles[f"{svc}-api"].append(child)
                        roles[f"{svc}-api-workers"] += children_of(child.pid, procs)
            elif len(argv) >= 3 and argv[-2] == "worker" and argv[-1] in SERVICES:
                roles[f"{argv[-1]}-worker"].append(child)
        # Brokers in node order (their properties file: <state>/kafka[-n]/server.properties).
        roles["kafka"].sort(key=lambda proc: proc.argv[-1])
        return roles

    @staticmethod
    def role_names() -> list[str]:
        names = ["postgres", "kafka"]
        for svc in SERVICES:
            names += [f"{svc}-api", f"{svc}-api-workers", f"{svc}-worker"]
        return names

    def one(self, role: str) -> Proc | None:
        found = self.snapshot()[role]
        return found[0] if found else None

    def missing(self) -> list[str]:
        """Roles not (fully) running: every role one process (Kafka its brokers, a worker its
        replicas), each API GUNICORN_WORKERS workers."""
        snap = self.snapshot()
        gaps = []
        for role, procs in snap.items():
            want = GUNICORN_WORKERS if role.endswith("-api-workers") else self.want.get(role, 1)
            if len(procs) != want:
                gaps.append(f"{role}: {len(procs)}/{want}")
        return gaps

    def kill(self, role: str, sig: int = signal.SIGKILL) -> Proc:
        """SIGKILL (by default) the first process of a role; the killed process."""
        proc = self.one(role)
        if proc is None:
            raise RuntimeError(f"no {role} process to kill (running: {self.snapshot()})")
        os.kill(proc.pid, sig)
        return proc

    def wait_gone(self, pid: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while alive(pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"pid {pid} still alive {timeout:g}s after SIGKILL")
            time.sleep(0.05)
