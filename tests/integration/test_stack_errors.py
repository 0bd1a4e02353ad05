"""`python -m infra.stack` refuses to start, with one line on stderr and exit code 2,
when it cannot run as configured. None of these cases starts a server.

Java is made unavailable by running with JAVA_HOME unset and a PATH holding an
empty directory only: the stack finds java the way the Kafka runner does
(JAVA_HOME, then PATH), so there is no separate override to test.
"""
from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_stack import stack_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def stack_env(state_dir: Path, **overrides: str) -> dict[str, str]:
    """Free, non-default ports throughout, so that a developer's `make run` is never in the way."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")}
    env.update(
        CLINIC_STATE_DIR=str(state_dir),
        **stack_ports(),
    )
    env.update(overrides)
    return env


def run_stack(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "infra.stack"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_a_port_in_use_is_named_with_the_variable_that_moves_it(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_stack(stack_env(tmp_path, CLINIC_INTAKE_PORT=str(port)))

    assert_one_line_error(result, f"port {port} (intake API)", "already in use", "CLINIC_INTAKE_PORT")


@pytest.mark.parametrize(("variable", "what"), [("CLINIC_MAIL_SINK_PORT", "the message sink (SMTP)"),
                                               ("CLINIC_SMS_SINK_PORT", "the message sink (SMS gateway)")])
def test_a_message_sink_port_in_use_is_named_with_its_variable(tmp_path, variable, what):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_stack(stack_env(tmp_path, **{variable: str(port)}))

    assert_one_line_error(result, f"port {port} ({what})", "already in use", variable)


@pytest.mark.parametrize(("variable", "value", "why"), [
    ("CLINIC_KAFKA_BROKERS", "2", "1 or 3"),  # replication factor 3 needs three
    ("CLINIC_WORKER_REPLICAS", "7", "6 partitions"),  # a seventh replica would get none
    ("CLINIC_WORKER_REPLICAS", "two", "1 to 6"),
])
def test_a_broker_or_replica_count_it_cannot_run_is_refused(tmp_path, variable, value, why):
    result = run_stack(stack_env(tmp_path, **{variable: value}))

    assert_one_line_error(result, f"{variable}={value!r}", why)


def test_with_three_brokers_a_port_of_the_second_is_named(tmp_path):
    """Node n listens on CLINIC_KAFKA_PORT + 2(n-1), its controller on the next port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")}
    env.update(CLINIC_STATE_DIR=str(tmp_path), CLINIC_KAFKA_BROKERS="3", **stack_ports(brokers=3))
    second = int(env["CLINIC_KAFKA_PORT"]) + 2
    with socket.create_server(("127.0.0.1", second)):
        result = run_stack(env)

    assert_one_line_error(result, f"port {second} (Kafka node 2)", "already in use", "CLINIC_KAFKA_PORT")


def test_a_second_stack_on_the_same_state_folder_is_refused(tmp_path):
    # The first `make run` is represented by its lock, held here the way it holds it.
    with open(tmp_path / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242\n")
        lock.flush()
        result = run_stack(stack_env(tmp_path))

    assert_one_line_error(result, "another `make run` (pid 4242)", str(tmp_path), "CLINIC_STATE_DIR")


def test_missing_java_says_what_to_install(tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = stack_env(tmp_path / "state", PATH=str(empty_bin))
    env.pop("JAVA_HOME", None)

    result = run_stack(env)

    assert_one_line_error(result, "java not found", "Java 17", "apt-get install")


def test_a_port_variable_that_is_not_a_number_is_refused(tmp_path):
    result = run_stack(stack_env(tmp_path, CLINIC_PG_PORT="fivefivefour"))

    assert_one_line_error(result, "CLINIC_PG_PORT='fivefivefour' is not a port number")

