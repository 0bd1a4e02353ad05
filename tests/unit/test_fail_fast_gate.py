"""The gate in front of the API's connection pool (services.common.fail_fast)."""
from __future__ import annotations

from services.common.fail_fast import FailFastGate


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_everyone_goes_through_while_nothing_has_failed():
    gate = FailFastGate(1.0, Clock())
    assert [gate.admit() for _ in range(5)] == [True] * 5


def test_after_a_failure_callers_are_refused_until_the_cool_down_is_over():
    clock = Clock()
    gate = FailFastGate(1.0, clock)
    gate.failed()
    assert gate.down
    assert [gate.admit() for _ in range(3)] == [False] * 3
    clock.now += 0.99
    assert not gate.admit()


def probing_gate() -> tuple[FailFastGate, Clock]:
    """A gate whose cool-down after a failure is over, and the caller it let through (the probe)."""
    clock = Clock()
    gate = FailFastGate(1.0, clock)
    gate.failed()
    clock.now += 1.0
    assert gate.admit(), "the probe"
    return gate, clock


def test_then_one_caller_probes_while_the_others_are_still_refused():
    gate, clock = probing_gate()
    assert [gate.admit() for _ in range(3)] == [False] * 3
    clock.now += 10  # however long the probe takes
    assert not gate.admit()


def test_a_probe_that_gets_through_opens_the_gate_for_all():
    gate, clock = probing_gate()
    gate.succeeded()
    assert not gate.down
    assert [gate.admit() for _ in range(3)] == [True] * 3


def test_a_probe_that_fails_starts_another_cool_down():
    gate, clock = probing_gate()
    clock.now += 3.0  # the probe waited the pool's timeout
    gate.failed()
    assert not gate.admit()
    clock.now += 1.0
    assert gate.admit()
