"""The worker's GIL switch interval (services/common/worker.py): CLINIC_WORKER_SWITCH_INTERVAL_MS,
1 ms by default, 0 for CPython's own; anything else stops the worker with the variable named."""
import sys

import pytest

from services.common.worker import SWITCH_INTERVAL_ENV, set_switch_interval


@pytest.fixture(autouse=True)
def cpython_interval():
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_one_millisecond_by_default():
    set_switch_interval({})
    assert sys.getswitchinterval() == pytest.approx(0.001)


def test_the_setting_in_milliseconds():
    set_switch_interval({SWITCH_INTERVAL_ENV: "0.5"})
    assert sys.getswitchinterval() == pytest.approx(0.0005)


def test_zero_keeps_cpythons_interval():
    set_switch_interval({SWITCH_INTERVAL_ENV: "0"})
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.parametrize("value", ["fast", "-1", "nan", "inf"])
def test_anything_else_stops_the_worker_naming_the_setting(value):
    with pytest.raises(SystemExit, match=f"{SWITCH_INTERVAL_ENV}: must be a number of milliseconds >= 0"):
        set_switch_interval({SWITCH_INTERVAL_ENV: value})
    assert sys.getswitchinterval() == pytest.approx(0.005)
