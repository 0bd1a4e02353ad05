"""The fault suite's cluster faults, short, on a stack of three brokers (as
`CLINIC_KAFKA_BROKERS=3 make run` starts it), under a few hundred reports: the broker leading
most partitions SIGKILLed, a rolling restart of the three, one broker held down 15 s. Nothing
acknowledged may be lost or doubled, and reports must keep reaching their final status while a
broker is down (tests/chaos/cluster_faults.py; `make chaos` for the long run, 60 s down)."""
from __future__ import annotations

import os

import pytest

from tests.chaos.scenario import CLUSTER_SHORT, run_suite
from tests.chaos.stack import running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster_stack():
    """A stack of its own with three brokers, whatever CLINIC_KAFKA_BROKERS the run has (see
    test_chaos_short.py for why not the session's)."""
    with running_stack(keep=os.environ.get("CLINIC_CHAOS_KEEP") == "1", brokers=3) as stack:
        yield stack


@pytest.mark.timeout(900)  # usually 2-3 minutes with the stack's start; every wait inside has its own bound
def test_nothing_acknowledged_is_lost_or_doubled_and_reports_flow_when_brokers_die(cluster_stack, capsys):
    result = run_suite(cluster_stack, CLUSTER_SHORT)
    with capsys.disabled():
        print("\n" + result.text)
    names = [phase.name for phase in result.phases]
    assert any(n.startswith("leaders' broker") for n in names) and "rolling restart of the 3 brokers" in names \
        and any(n.startswith("broker node") for n in names), names
    assert result.ok, result.text
