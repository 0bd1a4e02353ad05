"""The stack under test: the same as the `live_stack` fixture's (tests/live_stack.py)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.live_stack import LiveStack
from tests.live_stack import running_stack as _running_stack


@contextlib.contextmanager
def running_stack(keep: bool = False, ready_timeout: float = 300, brokers: int | None = None) -> Iterator[LiveStack]:
    """brokers: 1 or 3 (None: the run's CLINIC_KAFKA_BROKERS)."""
    with _running_stack(prefix="clinic-chaos-", keep=keep, ready_timeout=ready_timeout, brokers=brokers) as stack:
        yield stack
