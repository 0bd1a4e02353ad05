"""Children that stop when the process that started them dies, even by SIGKILL.

Every child of `make run` leads its own process group (so that a Ctrl-C in the
terminal reaches the supervisor alone, which then stops them in order). The
price is that nothing stops them if the supervisor is killed outright: they
would keep the ports and the data folders. Linux can tell the kernel to signal
a child when its parent dies (prctl PR_SET_PDEATHSIG); elsewhere this does
nothing.

The "parent" is the thread that started the child: call Popen from a thread
that lives as long as the child should (the supervisor starts every child from
its main thread).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A Popen preexec_fn: the child gets `sig` once its parent is gone. None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the line above: too late for the kernel
            os.kill(os.getpid(), sig)

    return set_death_signal
