"""infra.supervisor with tiny fake children (short Python processes)."""
from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from infra.supervisor import ManagedProcess, ShutdownRequested, StartError, Supervisor, spawn

RESTART = re.compile(r"restarting (\S+) \((.*)\) in (\S+)s$")


@pytest.fixture
def sup():
    supervisor = Supervisor(backoff_initial=0.05, backoff_max=0.2, poll_interval=0.01)
    yield supervisor
    supervisor.shutdown()  # nothing a failed test started may outlive it


@pytest.fixture(autouse=True)
def _capture(caplog):
    caplog.set_level(logging.INFO, logger="clinic.stack")


def python_child(tmp_path: Path, name: str, code: str, *args: str):
    """A start_fn running `python -c code args...` in its own process group."""

    def start():
        return spawn([sys.executable, "-c", code, *args], tmp_path / f"{name}.log")

    return start


def restarts(caplog, name: str) -> list[tuple[str, str]]:
    found = [RESTART.match(m) for m in caplog.messages]
    return [(m.group(2), m.group(3)) for m in found if m and m.group(1) == name]


def supervise_until(sup: Supervisor, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        sup.poll()
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """True if pid runs (a zombie awaiting a reaper that never comes is dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def all_gone(pids: list[int], timeout: float = 5.0) -> bool:
    """SIGKILL is asynchronous: a killed grandchild nobody waits for may take a moment."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} not written")
        time.sleep(0.01)


EXIT_3 = "import sys; sys.exit(3)"


def test_a_child_that_dies_is_restarted_with_doubling_delays_and_a_log_line(sup, tmp_path, caplog):
    sup.start(ManagedProcess("dier", python_child(tmp_path, "dier", EXIT_3)))

    supervise_until(sup, lambda: len(restarts(caplog, "dier")) >= 5)

    assert restarts(caplog, "dier")[:5] == [
        ("exit code 3", "0.05"),
        ("exit code 3", "0.1"),
        ("exit code 3", "0.2"),
        ("exit code 3", "0.2"),  # capped at backoff_max
        ("exit code 3", "0.2"),
    ]
    assert "restarting dier (exit code 3) in 0.05s" in caplog.messages


def test_the_delay_starts_over_once_the_child_stayed_up_long_enough(tmp_path, caplog):
    sup = Supervisor(backoff_initial=0.05, backoff_max=0.2, stable_after=0.2, poll_interval=0.01)
    try:
        code = "import sys, time; time.sleep(0.3); sys.exit(4)"
        sup.start(ManagedProcess("flaky", python_child(tmp_path, "flaky", code)))
        supervise_until(sup, lambda: len(restarts(caplog, "flaky")) >= 3)
    finally:
        sup.shutdown()

    assert restarts(caplog, "flaky")[:3] == [("exit code 4", "0.05")] * 3


def test_the_restarted_child_runs_again(sup, tmp_path):
    # Fails on its first run only, like a broker that lost a race for its port.
    code = (
        "import os, sys, time\n"
        "if not os.path.exists(sys.argv[1]):\n"
        "    open(sys.argv[1], 'w').close(); sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    marker = tmp_path / "ran-once"
    mp = ManagedProcess("once", python_child(tmp_path, "once", code, str(marker)))
    sup.start(mp)
    first_pid = mp.proc.pid

    supervise_until(sup, lambda: mp.exits == 1 and mp.running)

    assert mp.proc.pid != first_pid
    sup.sleep(0.2)
    assert mp.running and mp.exits == 1


# A child that, once ready, records the signal that stops it in a shared file,
# and leaves a grandchild (in its process group) behind that must die too.
GRACEFUL = """
import os, signal, subprocess, sys, time
name, events, ready = sys.argv[1:4]
def stop(signum, frame):
    with open(events, "a") as f:
        f.write(f"{name} {signal.Signals(signum).name}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(ready, "w") as f:
    f.write(str(grandchild.pid))
time.sleep(60)
"""

STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
time.sleep(60)
"""


def graceful(tmp_path: Path, name: str, tier: int, **kwargs) -> ManagedProcess:
    ready = tmp_path / f"{name}.ready"
    return ManagedProcess(
        name,
        python_child(tmp_path, name, GRACEFUL, name, str(tmp_path / "events"), str(ready)),
        ready_fn=lambda: wait_for_file(ready),
        tier=tier,
        **kwargs,
    )


def test_shutdown_stops_tiers_in_reverse_order_and_leaves_nothing_running(sup, tmp_path):
    processes = [graceful(tmp_path, "db", 0), graceful(tmp_path, "broker", 1), graceful(tmp_path, "api", 2)]
    stubborn_ready = tmp_path / "stubborn.ready"
    stubborn = ManagedProcess(
        "stubborn",
        python_child(tmp_path, "stubborn", STUBBORN, str(stubborn_ready)),
        ready_fn=lambda: wait_for_file(stubborn_ready),
        tier=2,
        grace=0.5,
    )
    for mp in [*processes, stubborn]:
        sup.start(mp)
    pids = [mp.proc.pid for mp in [*processes, stubborn]]
    grandchildren = [int((tmp_path / f"{mp.name}.ready").read_text()) for mp in processes]
    began = time.monotonic()

    sup.shutdown()

    took = time.monotonic() - began
    events = (tmp_path / "events").read_text().splitlines()
    assert events == ["api SIGTERM", "broker SIGTERM", "db SIGTERM"]
    assert 0.5 <= took < 10, "the stubborn child gets its grace (0.5 s), then SIGKILL (not 60 s)"
    assert all_gone(pids + grandchildren)
    assert all(mp.proc is None for mp in sup.processes)


def test_shutdown_uses_the_process_own_stop_function(sup, tmp_path):
    mp = graceful(tmp_path, "db", 0, stop_fn=lambda proc: proc.send_signal(signal.SIGINT))
    sup.start(mp)

    sup.shutdown()

    assert (tmp_path / "events").read_text().splitlines() == ["db SIGINT"]


def test_shutdown_does_not_restart_a_child_waiting_for_its_backoff(sup, tmp_path):
    mp = ManagedProcess("dier", python_child(tmp_path, "dier", EXIT_3))
    sup.start(mp)
    supervise_until(sup, lambda: mp.exits == 1)

    sup.shutdown()
    time.sleep(0.1)
    sup.poll()

    assert mp.proc is None and mp.restart_at is None


def test_a_child_that_never_becomes_ready_fails_the_start_with_its_log(sup, tmp_path):
    def never_ready():
        raise TimeoutError("no answer on port 1")

    mp = ManagedProcess(
        "mute",
        python_child(tmp_path, "mute", "import time; time.sleep(60)"),
        ready_fn=never_ready,
        log_path=tmp_path / "mute.log",
    )
    with pytest.raises(StartError) as failure:
        sup.start(mp)
    assert str(failure.value) == (
        f"mute did not become ready: no answer on port 1; read {tmp_path / 'mute.log'}"
    )

    pid = mp.proc.pid
    sup.shutdown()
    assert all_gone([pid])


def test_a_failed_restart_is_retried_with_backoff(sup, tmp_path, caplog):
    attempts = []

    def start():
        attempts.append(1)
        if len(attempts) > 1:
            raise OSError("no such file")
        return spawn([sys.executable, "-c", EXIT_3], tmp_path / "gone.log")

    sup.start(ManagedProcess("gone", start))
    supervise_until(sup, lambda: len(restarts(caplog, "gone")) >= 3)

    assert restarts(caplog, "gone")[:3] == [
        ("exit code 3", "0.05"),
        ("could not start: no such file", "0.1"),
        ("could not start: no such file", "0.2"),
    ]


def test_sigterm_interrupts_supervision(sup, tmp_path):
    mp = ManagedProcess("sleeper", python_child(tmp_path, "sleeper", "import time; time.sleep(60)"))
    sup.start(mp)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))

    with sup.handling_signals():
        timer.start()
        with pytest.raises(ShutdownRequested):
            sup.run()
    timer.join()

    assert sup.stop_requested and mp.running  # stopping is shutdown()'s job


def test_a_signal_inside_a_critical_section_is_deferred_to_its_end(sup):
    reached_end = False
    with sup.handling_signals():
        with pytest.raises(ShutdownRequested):
            with sup._critical():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler has run by now and must not have raised
                reached_end = True
    assert reached_end


def test_a_signal_during_shutdown_skips_the_remaining_grace(sup, tmp_path):
    ready = tmp_path / "stubborn.ready"
    mp = ManagedProcess("stubborn", python_child(tmp_path, "stubborn", STUBBORN, str(ready)),
                        ready_fn=lambda: wait_for_file(ready), grace=30)
    sup.start(mp)
    pid = mp.proc.pid
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    began = time.monotonic()

    with sup.handling_signals():
        timer.start()
        sup.shutdown()  # no ShutdownRequested: it is already stopping
    timer.join()

    assert time.monotonic() - began < 10  # not the 30 s grace
    assert all_gone([pid])


def test_shutdown_fits_in_its_budget_even_when_every_tier_is_stubborn(tmp_path):
    sup = Supervisor(shutdown_budget=3.0)
    pids = []
    try:
        for tier in (0, 1, 2):
            ready = tmp_path / f"stubborn{tier}.ready"
            sup.start(ManagedProcess(f"stubborn{tier}",
                                     python_child(tmp_path, f"stubborn{tier}", STUBBORN, str(ready)),
                                     ready_fn=lambda ready=ready: wait_for_file(ready), tier=tier, grace=10))
            pids.append(sup.processes[-1].proc.pid)
        began = time.monotonic()
    finally:
        sup.shutdown()

    assert time.monotonic() - began < 3.0 + 2.0  # the budget, plus SIGKILL and reaping
    assert all_gone(pids)


# A parent that starts a long-sleeping child, prints its pid, then waits. "spawn": as the
# supervisor starts services; "postgres": as infra/postgres.py starts the server (as the
# `postgres` user when we are root: the death signal must survive that switch).
SPAWNING_PARENT = """
import signal, subprocess, sys, time
from pathlib import Path
from infra.lifeline import stop_with_parent
from infra.postgres import run_as
from infra.supervisor import spawn
# A suite started as a background job without job control (`(cmd &)`) inherits SIGINT
# ignored, and an ignored signal stays ignored across exec: `sleep` would never die of it.
# PostgreSQL, the real child, installs its own SIGINT handler (fast shutdown) whatever it
# inherited; the stand-in gets the default disposition a terminal gives.
signal.signal(signal.SIGINT, signal.SIG_DFL)
sleeper = ["sleep", "120"]  # a binary any user may run
if sys.argv[2] == "spawn":
    child = spawn(sleeper, Path(sys.argv[1]))
else:
    child = subprocess.Popen(sleeper, process_group=0, preexec_fn=stop_with_parent(signal.SIGINT),
                             **run_as().popen_kwargs())
print(child.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("how", ["spawn", "postgres"])
def test_a_child_stops_when_the_supervisor_is_killed_outright(tmp_path, how):
    """Its own process group keeps a terminal's Ctrl-C away from it; the death signal
    still stops it when nothing is left to stop it in order (SIGKILL of `make run`)."""
    import subprocess

    parent = subprocess.Popen([sys.executable, "-c", SPAWNING_PARENT, str(tmp_path / "child.log"), how],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        child_pid = int(parent.stdout.readline())
        assert alive(child_pid)
        assert os.getpgid(child_pid) == child_pid, "the child leads its own process group"
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child_pid), "the child outlived its killed parent"
    finally:
        parent.kill()
        parent.stdout.close()
