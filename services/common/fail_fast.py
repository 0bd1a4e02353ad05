"""Refuse at once while a dependency is known to be down, and let one caller at a time
find out whether it is back (a circuit breaker with a single probe).

Pure logic with an injected clock: services/common/db.py wraps the API's connection pool
with it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class FailFastGate:
    """`admit()` says whether a caller may try. After `failed()`, callers are refused
    for `cool_down` seconds; then one of them (the probe) is admitted while the others
    are still refused, until the probe reports `succeeded()` (all admitted again) or
    `failed()` (another cool-down)."""

    def __init__(self, cool_down: float, clock: Callable[[], float] = time.monotonic):
        self.cool_down = cool_down
        self.clock = clock
        self._lock = threading.Lock()
        self._down = False
        self._probing = False
        self._failed_at = 0.0

    @property
    def down(self) -> bool:
        return self._down

    def admit(self) -> bool:
        with self._lock:
            if not self._down:
                return True
            if self._probing or self.clock() < self._failed_at + self.cool_down:
                return False
            self._probing = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._down = self._probing = False

    def failed(self) -> None:
        with self._lock:
            self._down, self._probing = True, False
            self._failed_at = self.clock()
