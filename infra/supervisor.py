"""Start child processes, restart the ones that die, stop them all in order.

A small, generic piece of `make run` (see infra/stack.py), kept free of
anything clinic-specific so that it can be tested with tiny fake children.

- Every child is expected to lead its own process group (`spawn` does that),
  so that signals reach its grandchildren too (gunicorn workers, the JVM,
  PostgreSQL backends) and nothing outlives a stop.
- A child that exits while the stack is up is restarted after a delay that
  doubles on each quick failure (1 s, 2 s, 4 s ... capped) and goes back to
  the first step once the child has stayed up long enough.
- Shutdown goes tier by tier, highest tier first; the processes of one tier
  are stopped together (SIGTERM, or their own stop function), and whatever is
  still running when the tier's grace is over gets SIGKILL.
- SIGINT/SIGTERM/SIGHUP raise ShutdownRequested in the main thread, except
  inside the short critical sections that create or reap a child, where the
  exception is deferred to the end of the section (so no child is ever
  started without being recorded, and therefore stopped).
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra.lifeline import stop_with_parent

log = logging.getLogger("clinic.stack")

# Seconds kept back per remaining tier so that SIGKILL and reaping still fit
# in the shutdown budget when an earlier tier used all of its grace.
_KILL_RESERVE = 1.0
_REAP_TIMEOUT = 5.0


class ShutdownRequested(BaseException):
    """A stop signal arrived. BaseException, like KeyboardInterrupt, so that
    `except Exception` in code we call does not swallow it."""


class StartError(Exception):
    """A child could not be started or did not become ready (one-line message)."""


def spawn(
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen:
    """Start argv as the leader of a new process group, stdout and stderr
    appended to log_path, stdin closed; SIGTERM reaches it if we die."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # The child keeps its own copy of the descriptor; ours can close at once.
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            process_group=0,
            preexec_fn=stop_with_parent(signal.SIGTERM),
        )


@dataclass
class ManagedProcess:
    """One supervised child.

    start_fn starts it and returns its Popen; ready_fn (optional) blocks until
    it serves, raising on failure; stop_fn (optional) asks it to stop instead
    of SIGTERM to its process group (e.g. PostgreSQL wants SIGINT to the
    postmaster alone). Lower tiers start first and stop last.
    """

    name: str
    start_fn: Callable[[], subprocess.Popen]
    ready_fn: Callable[[], None] | None = None
    stop_fn: Callable[[subprocess.Popen], None] | None = None
    tier: int = 0
    grace: float = 10.0
    log_path: Path | None = None

    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    pgid: int | None = field(default=None, init=False, repr=False)
    started_at: float = field(default=0.0, init=False, repr=False)
    quick_failures: int = field(default=0, init=False, repr=False)
    exits: int = field(default=0, init=False, repr=False)
    last_exit: str = field(default="", init=False, repr=False)
    restart_at: float | None = field(default=None, init=False, repr=False)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def signal_group(mp: ManagedProcess, sig: int) -> None:
    """Send sig to the child's whole process group; if the child shares our
    group (a start_fn that did not use `spawn`), to the child alone."""
    if mp.pgid is not None and mp.pgid != os.getpgrp():
        try:
            os.killpg(mp.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the group is already gone
    elif mp.proc is not None and mp.proc.poll() is None:
        mp.proc.send_signal(sig)


def _with_log_hint(message: str, mp: ManagedProcess) -> str:
    if mp.log_path is None or str(mp.log_path) in message:
        return message
    return f"{message}; read {mp.log_path}"


class Supervisor:
    def __init__(
        self,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
        poll_interval: float = 0.5,
        shutdown_budget: float = 30.0,
    ) -> None:
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.poll_interval = poll_interval
        self.shutdown_budget = shutdown_budget
        self.processes: list[ManagedProcess] = []
        self._critical_depth = 0
        self._stop_signal: int | None = None
        self._hurry = False
        self._stopping = False

    # --- signals -------------------------------------------------------

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        """Turn SIGINT/SIGTERM/SIGHUP into ShutdownRequested while inside."""
        signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in signums}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self._stop_signal is not None or self._stopping:
            # Ctrl-C while already stopping: skip the remaining graces.
            self._hurry = True
            log.warning("%s while stopping: killing what is left now", signal.Signals(signum).name)
            return
        self._stop_signal = signum
        if self._critical_depth == 0:
            raise ShutdownRequested(signal.Signals(signum).name)

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    @contextmanager
    def _critical(self) -> Iterator[None]:
        """Defer ShutdownRequested until the block is done."""
        self._critical_depth += 1
        try:
            yield
        finally:
            self._critical_depth -= 1
        if self._critical_depth == 0 and self._stop_signal is not None and not self._stopping:
            raise ShutdownRequested(signal.Signals(self._stop_signal).name)

    # --- starting ------------------------------------------------------

    def start(self, mp: ManagedProcess) -> None:
        """Add mp, start it and wait until it is ready (StartError if not)."""
        self.processes.append(mp)
        try:
            self._spawn(mp)
        except ShutdownRequested:
            raise
        except Exception as exc:
            raise StartError(f"could not start {mp.name}: {exc}") from exc
        if mp.ready_fn is None:
            return
        try:
            mp.ready_fn()
        except ShutdownRequested:
            raise
        except Exception as exc:
            raise StartError(f"{mp.name} did not become ready: {_with_log_hint(str(exc), mp)}") from exc

    def _spawn(self, mp: ManagedProcess) -> None:
        with self._critical():
            proc = mp.start_fn()
            mp.proc = proc
            try:
                mp.pgid = os.getpgid(proc.pid)
            except ProcessLookupError:
                mp.pgid = None
            mp.started_at = time.monotonic()
            mp.restart_at = None
        log.info("started %s (pid %d)", mp.name, proc.pid)

    # --- supervising ---------------------------------------------------

    def run(self) -> None:
        """Supervise until a stop signal arrives (raises ShutdownRequested)."""
        while True:
            self.poll()
            time.sleep(self.poll_interval)

    def sleep(self, seconds: float) -> None:
        """Sleep while still supervising (restarts happen meanwhile)."""
        end = time.monotonic() + seconds
        while True:
            self.poll()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.poll_interval))

    def poll(self) -> None:
        """One round: notice exits, schedule and perform due restarts."""
        for mp in self.processes:
            if mp.proc is not None:
                code = mp.proc.poll()
                if code is not None:
                    self._on_exit(mp, f"exit code {code}")
            elif mp.restart_at is not None and time.monotonic() >= mp.restart_at:
                self._restart(mp)

    def _on_exit(self, mp: ManagedProcess, reason: str) -> None:
        with self._critical():
            # Orphans of a dead leader (PostgreSQL backends, a JVM under a
            # wrapper) would keep the port or shared memory: clear the group.
            signal_group(mp, signal.SIGKILL)
            self._reap(mp)
        uptime = time.monotonic() - mp.started_at
        if uptime >= self.stable_after:
            mp.quick_failures = 0
        delay = min(self.backoff_initial * 2**mp.quick_failures, self.backoff_max)
        mp.quick_failures += 1
        mp.exits += 1
        mp.last_exit = reason
        mp.restart_at = time.monotonic() + delay
        log.warning("restarting %s (%s) in %gs", mp.name, reason, delay)

    def _restart(self, mp: ManagedProcess) -> None:
        try:
            self._spawn(mp)
        except ShutdownRequested:
            raise
        except Exception as exc:
            mp.started_at = time.monotonic()
            self._on_exit(mp, f"could not start: {exc}")
            return
        if mp.ready_fn is None:
            return
        try:
            mp.ready_fn()
        except ShutdownRequested:
            raise
        except Exception as exc:
            self._on_exit(mp, f"not ready: {exc}")

    def _reap(self, mp: ManagedProcess) -> None:
        if mp.proc is None:
            return
        try:
            mp.proc.wait(timeout=_REAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) did not die after SIGKILL", mp.name, mp.proc.pid)
        mp.proc = None
        mp.pgid = None

    # --- stopping ------------------------------------------------------

    def shutdown(self) -> None:
        """Stop everything, highest tier first, within shutdown_budget."""
        self._stopping = True
        self._critical_depth += 1  # from here on, signals only hurry us up
        deadline = time.monotonic() + self.shutdown_budget
        tiers = sorted({mp.tier for mp in self.processes}, reverse=True)
        for index, tier in enumerate(tiers):
            members = [mp for mp in self.processes if mp.tier == tier]
            for mp in members:
                mp.restart_at = None
            reserve = (len(tiers) - index - 1) * _KILL_RESERVE
            self._stop_tier(members, deadline - reserve)

    def _stop_tier(self, members: list[ManagedProcess], tier_deadline: float) -> None:
        alive = [mp for mp in members if mp.proc is not None]
        started = time.monotonic()
        helpers = [self._ask_to_stop(mp) for mp in alive]
        for mp in alive:
            until = min(started + mp.grace, tier_deadline)
            self._wait_exit(mp, until)
        for mp in alive:
            if mp.proc.poll() is None:
                log.warning("%s did not stop in time: killing it", mp.name)
            # Always, so that stray grandchildren in the group die too.
            signal_group(mp, signal.SIGKILL)
            self._reap(mp)
            log.info("stopped %s", mp.name)
        for helper in helpers:
            if helper is not None:
                helper.join(timeout=1.0)

    def _ask_to_stop(self, mp: ManagedProcess) -> threading.Thread | None:
        log.info("stopping %s", mp.name)
        if mp.stop_fn is None:
            signal_group(mp, signal.SIGTERM)
            return None
        # A stop function may block (it usually waits for the exit itself);
        # run it aside so that the grace and SIGKILL stay ours to enforce.
        helper = threading.Thread(
            target=self._run_stop_fn, args=(mp, mp.proc), name=f"stop-{mp.name}", daemon=True
        )
        helper.start()
        return helper

    @staticmethod
    def _run_stop_fn(mp: ManagedProcess, proc: subprocess.Popen) -> None:
        try:
            mp.stop_fn(proc)
        except Exception as exc:  # the SIGKILL that follows still cleans up
            log.warning("stopping %s failed: %s", mp.name, exc)

    def _wait_exit(self, mp: ManagedProcess, until: float) -> None:
        while mp.proc.poll() is None and time.monotonic() < until and not self._hurry:
            time.sleep(0.05)
