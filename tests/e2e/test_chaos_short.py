"""The fault suite, short: a few hundred reports through the stack started as `make run`
starts it while every process (each API's gunicorn worker and master, each worker, the
broker, PostgreSQL) is SIGKILLed in turn, the broker and the database are held down for a
few seconds, a service is scaled out and one of its workers killed, and poison is injected
on every topic. Nothing acknowledged may be lost or doubled; see tests/chaos/ (and
`make chaos` for the long run)."""
from __future__ import annotations

import os

import pytest

from tests.chaos.scenario import SHORT, run_suite
from tests.chaos.stack import running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own_stack():
    """A stack of its own (as `make run` starts it), not the session's `live_stack`: this test
    kills its processes, books its slots and parks poison in its dead-letter topics, which
    other tests must not have to account for (nor their data this test). Its state folder
    (logs) is kept when CLINIC_CHAOS_KEEP=1."""
    with running_stack(keep=os.environ.get("CLINIC_CHAOS_KEEP") == "1") as stack:
        yield stack


@pytest.mark.timeout(900)  # usually 3-4 minutes with the stack's start; every wait inside has its own bound
def test_nothing_acknowledged_is_lost_or_doubled_when_processes_die(own_stack, capsys):
    result = run_suite(own_stack, SHORT)
    with capsys.disabled():
        print("\n" + result.text)
    assert result.ok, result.text
