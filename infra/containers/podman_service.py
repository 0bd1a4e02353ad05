"""Podman as a Docker engine for docker-compose, on a machine without systemd.

`podman system service` serves the Docker API on a unix socket; docker-compose (1.29)
drives it with DOCKER_HOST=unix://<socket>. Podman schedules healthchecks with
systemd timers, and with no systemd (CI sandboxes, containers) nothing runs them: a
container would stay "starting" for ever, and compose's `condition: service_healthy`
would wait for ever. HealthcheckTicker does the timers' job: it asks the API to run
each running container's own healthcheck at the container's own interval, as Docker
does (the first probe one interval after the start; failures inside start_period do
not count: Podman applies the check's settings itself).
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from infra.containers.images import podman_env
from infra.lifeline import stop_with_parent

log = logging.getLogger(__name__)

API = "/v4.0.0/libpod"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def api_get(sock: Path, path: str, timeout: float = 30):
    """GET on Podman's libpod API; the decoded JSON (or text) answer, or OSError."""
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request("GET", API + path)
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    if response.status >= 400:
        raise OSError(f"podman API {path}: HTTP {response.status} {body[:200]}")
    try:
        return json.loads(body)
    except ValueError:
        return body


class HealthcheckTicker:
    """Runs every running container's healthcheck at its interval, in threads, one at a time
    per container, until stop()."""

    def __init__(self, sock: Path, labels: list[str], poll: float = 1.0):
        self.sock = sock
        self.labels = labels  # only containers with these labels (key=value); none: all
        self.poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="healthcheck-ticker", daemon=True)
        self._intervals: dict[str, float | None] = {}  # container id -> seconds, None: no check
        self._due: dict[tuple[str, int], float] = {}  # (id, started at) -> next probe time
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self.probes = 0

    def start(self) -> HealthcheckTicker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self._tick()
            except OSError as exc:  # the service restarting, a container going away: next tick
                log.debug("healthcheck ticker: %s", exc)

    def _tick(self) -> None:
        wanted = {"status": ["running"], **({"label": self.labels} if self.labels else {})}
        filters = urllib.parse.quote(json.dumps(wanted))
        now = time.time()
        for container in api_get(self.sock, f"/containers/json?filters={filters}"):
            cid = container["Id"]
            interval = self._interval(cid)
            if interval is None:
                continue
            key = (cid, int(container.get("StartedAt") or 0))
            due = self._due.setdefault(key, (key[1] or now) + interval)
            with self._lock:
                if now < due or cid in self._busy:
                    continue
                self._busy.add(cid)
            self._due[key] = now + interval
            threading.Thread(target=self._probe, args=(cid, interval), daemon=True).start()

    def _interval(self, cid: str) -> float | None:
        if cid not in self._intervals:
            config = api_get(self.sock, f"/containers/{cid}/json").get("Config", {}).get("Healthcheck") or {}
            test = config.get("Test") or []
            # Intervals are in nanoseconds; Docker's default is 30 s.
            self._intervals[cid] = None if not test or test[0] == "NONE" else (config.get("Interval") or 30e9) / 1e9
        return self._intervals[cid]

    def _probe(self, cid: str, interval: float) -> None:
        try:
            api_get(self.sock, f"/containers/{cid}/healthcheck", timeout=interval + 60)
            self.probes += 1
        except OSError as exc:
            log.debug("healthcheck of %s: %s", cid[:12], exc)
        finally:
            with self._lock:
                self._busy.discard(cid)


@contextlib.contextmanager
def podman_service(sock: Path, log_path: Path, labels: list[str], ready_timeout: float = 30) -> Iterator[str]:
    """`podman system service` on `sock` plus the healthcheck ticker for the containers with
    `labels`; yields DOCKER_HOST."""
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                                env=podman_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=stop_with_parent(signal.SIGTERM))  # no orphan if we are killed
    ticker = None
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"podman system service exited with {proc.returncode}; see {log_path}")
            try:
                if api_get(sock, "/_ping", timeout=2) == "OK":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"podman system service not answering on {sock}; see {log_path}")
            time.sleep(0.2)
        ticker = HealthcheckTicker(sock, labels).start()
        yield f"unix://{sock}"
    finally:
        if ticker:
            ticker.stop()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.containers.podman_service",
        description="Podman's Docker API for docker-compose, with healthchecks run where no systemd "
                    "does; in the foreground until Ctrl-C (docs/compose.md).")
    parser.add_argument("--socket", type=Path, default=Path("/run/clinic-podman/podman.sock"))
    parser.add_argument("--project", help="only this compose project's containers (default: all)")
    args = parser.parse_args(argv)
    labels = [f"com.docker.compose.project={args.project}"] if args.project else []
    log_path = args.socket.with_name("podman-service.log")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with podman_service(args.socket, log_path, labels) as docker_host:
        print(f"export DOCKER_HOST={docker_host}   # log: {log_path}; Ctrl-C stops it", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
