"""A service's API served as `make run` serves it: gunicorn with services/common/gunicorn_conf.py,
on a free port, against the test infra; stopped (SIGTERM, then SIGKILL) on exit."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

from infra.postgres import free_port
from tests.process_support import stop

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def running_gunicorn(service: str, stack_env: dict[str, str], log_path: Path, *,
                     workers: int | None = 1, threads: int = 4) -> Iterator[str]:
    """Yields the base URL, e.g. http://127.0.0.1:40123. workers=None: gunicorn_conf.py's own
    processes and threads, exactly as `make run` serves the API."""
    sizing = [] if workers is None else ["--workers", str(workers), "--threads", str(threads)]
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")}, **stack_env,
           "CLINIC_SERVICE": service, "CLINIC_BIND": f"127.0.0.1:{port}"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:services.common.gunicorn_conf",
             *sizing, f"services.{service}.app:create_app()"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"gunicorn exited: {log_path.read_text()[-2000:]}"
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still booting
                pass
            assert time.monotonic() < deadline, f"gunicorn not up: {log_path.read_text()[-2000:]}"
            time.sleep(0.2)
        yield url
    finally:
        stop(proc)
