"""The fault suite, short: a few hundred reports through the stack started as `make run`
starts it while every process (each API's gunicorn worker and master, each worker, the
broker, PostgreSQL) is SIGKILLed in turn, the broker and the database are held down for a
few seconds, a service is scaled out and one of its workers killed, and poison is injected
on every topic. Nothing acknowledged may be lost or doubled; see tests/chaos/ (and
`make chaos` for the long run)."""
from __future__ import annotations

import gc
import warnings

import pytest

from tests.chaos.scenario import SHORT, run_suite

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)  # usually about 3 minutes; every wait inside has its own bound
# kafka-python 3.0.12 leaves the socket of a refused connection to the garbage collector
# (kafka/net/inet.py), and here the broker is down on purpose.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_nothing_acknowledged_is_lost_or_doubled_when_processes_die(live_stack, capsys):
    try:
        result = run_suite(live_stack, SHORT)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()  # now, not in a later test
    with capsys.disabled():
        print("\n" + result.text)
    assert result.ok, result.text
