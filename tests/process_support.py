"""Stopping a process a test or bench started: the one way every harness does it."""
from __future__ import annotations

import subprocess

STOP_GRACE_S = 30


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within `grace` seconds; reaped either way."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
