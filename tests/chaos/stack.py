"""The stack under test: `python -m infra.stack` (what `make run` runs) in a temporary state
folder, on free ports, without demo data; the same thing the `live_stack` fixture starts,
for `python -m tests.chaos` outside pytest."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import REPO, LiveStack, _kafka_lib_dir, _wait_ready, free_port_pair


def stack_env(state_dir: Path) -> dict[str, str]:
    from infra.postgres import free_port

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
        "CLINIC_STATE_DIR": str(state_dir),
        "CLINIC_DEMO": "0",
        "CLINIC_KAFKA_LIB_DIR": str(_kafka_lib_dir()),
        "CLINIC_PG_PORT": str(free_port()),
        "CLINIC_KAFKA_PORT": str(free_port_pair()),
        "CLINIC_INTAKE_PORT": str(free_port()),
        "CLINIC_TRIAGE_PORT": str(free_port()),
        "CLINIC_REFERRAL_PORT": str(free_port()),
        "CLINIC_SECRET_KEY": "chaos-secret",
    }
    env["CLINIC_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{env['CLINIC_KAFKA_PORT']}"
    env["CLINIC_ADMIN_DATABASE_URL"] = (
        f"postgresql://clinic_admin:clinic_admin@127.0.0.1:{env['CLINIC_PG_PORT']}/clinic")
    return env


@contextlib.contextmanager
def running_stack(keep: bool = False, ready_timeout: float = 300) -> Iterator[LiveStack]:
    state_dir = Path(tempfile.mkdtemp(prefix="clinic-chaos-"))
    stack = LiveStack(state_dir, stack_env(state_dir))
    try:
        with open(state_dir / "stack-console.log", "wb") as console:
            stack.proc = subprocess.Popen([sys.executable, "-m", "infra.stack"], env=stack.env, cwd=REPO,
                                          stdout=console, stderr=subprocess.STDOUT)
            try:
                _wait_ready(stack, timeout=ready_timeout)
                yield stack
            finally:
                stack.proc.send_signal(signal.SIGTERM)
                try:
                    stack.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    stack.proc.kill()
                    stack.proc.wait()
    finally:
        if keep:
            print(f"state folder kept: {state_dir}", file=sys.stderr)
        else:
            shutil.rmtree(state_dir, ignore_errors=True)
