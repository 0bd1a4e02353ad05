"""The whole stack, started as `make run` starts it (`python -m infra.stack`), on a temporary
state folder and free ports, without demo data: the `live_stack` fixture and the fault suite
(`python -m tests.chaos`) both use it."""
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

from services.common import settings as settings_module

REPO = Path(__file__).resolve().parents[1]


def kafka_brokers() -> int:
    """CLINIC_KAFKA_BROKERS of the test run: 1 (the default) or 3 (the cluster; docs/kafka-cluster.md)."""
    return int(os.environ.get("CLINIC_KAFKA_BROKERS") or 1)


def kafka_lib_dir() -> Path:
    # Jars are cached under the repo's state folder and shared by every run (make run too).
    return Path(os.environ.get("CLINIC_KAFKA_LIB_DIR", REPO / ".state" / "kafka" / "lib"))


class LiveStack:
    """`python -m infra.stack` in a temporary state folder, on free ports, without demo data."""

    def __init__(self, state_dir: Path, env: dict[str, str]):
        self.state_dir = state_dir
        self.env = env
        self.base_url = {svc: f"http://127.0.0.1:{env[f'CLINIC_{svc.upper()}_PORT']}"
                         for svc in settings_module.SERVICES}
        self.worker_metrics_url = {svc: f"http://127.0.0.1:{env[f'CLINIC_{svc.upper()}_WORKER_METRICS_PORT']}/metrics"
                                   for svc in settings_module.SERVICES}
        self.proc = None
        # With the TLS proxy (running_stack(tls_proxy=True)): its https:// and http:// bases
        # and the local CA's certificate, for `verify=`.
        self.proxy_url = self.proxy_http_url = self.proxy_ca = None
        if env.get("CLINIC_TLS_PROXY") == "1":
            self.proxy_url = f"https://localhost:{env['CLINIC_PROXY_HTTPS_PORT']}"
            self.proxy_http_url = f"http://localhost:{env['CLINIC_PROXY_HTTP_PORT']}"
            self.proxy_ca = str(state_dir / "proxy" / "ca.pem")

    def settings(self, service: str = "") -> settings_module.Settings:
        return settings_module.load(service, env=self.env)

    def kafka_security(self, principal: str = settings_module.KAFKA_ADMIN_PRINCIPAL) -> dict:
        """Client settings for the stack's broker as `principal` (its passwords are under
        the state folder's secrets/, made by the broker's runner)."""
        from services.common.kafka_io import client_security

        return client_security(self.settings(), principal)

    def kiosk_key(self, name: str | None = None) -> str:
        import uuid

        from services.admin.credentials import kiosk_add

        return kiosk_add(self.settings(), name or f"kiosk-{uuid.uuid4().hex[:8]}")

    def staff_token(self, role: str = "scheduler", name: str | None = None) -> str:
        import uuid

        from services.admin.credentials import staff_add

        return staff_add(self.settings(), name or f"{role}-{uuid.uuid4().hex[:8]}", role)


def wait_ready(stack: LiveStack, timeout: float) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    pending = {svc: f"{url}/readyz" for svc, url in stack.base_url.items()}
    if stack.proxy_url:  # started after the APIs: ready when it passes a readyz on
        pending["proxy"] = f"{stack.proxy_url}/intake/readyz"
    while pending and time.monotonic() < deadline:
        if stack.proc.poll() is not None:
            raise RuntimeError(f"infra.stack exited with {stack.proc.returncode}; see {stack.state_dir}/logs")
        for svc, url in list(pending.items()):
            try:
                context = None
                if url.startswith("https:"):
                    import ssl

                    context = ssl.create_default_context(cafile=stack.proxy_ca)
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if response.status == 200:
                        pending.pop(svc)
            except OSError:
                pass
        time.sleep(0.5)
    if pending:
        raise RuntimeError(f"not ready after {timeout}s: {sorted(pending)}; see {stack.state_dir}/logs")


def free_port_pair() -> int:
    """A free port whose next port is free too (the Kafka controller listens there)."""
    import socket

    from infra.postgres import free_port

    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def stack_ports(tls_proxy: bool = False, brokers: int = 1, worker_replicas: int = 1) -> dict[str, str]:
    """A free port for every listener of one stack, no two alike (nor the Kafka controllers',
    each broker's port + 1; nor the other brokers', the ports after; nor the worker
    replicas', the first's + 10(n-1): infra/stack.py): picked one by one, free ports could repeat."""
    from infra.postgres import free_port
    from infra.stack import METRICS_PORT_STRIDE

    taken: set[int] = set()

    def pick(offsets: tuple[int, ...] = (0,)) -> str:
        while True:
            port = free_port_pair() if len(offsets) > 1 else free_port()
            span = {port + offset for offset in offsets}
            if not span & taken and all(_port_free(p) for p in span):
                taken.update(span)
                return str(port)

    ports = {"CLINIC_KAFKA_PORT": pick(tuple(range(2 * brokers))), "CLINIC_PG_PORT": pick()}
    metrics = tuple(METRICS_PORT_STRIDE * n for n in range(worker_replicas))
    for svc in settings_module.SERVICES:
        ports[f"CLINIC_{svc.upper()}_PORT"] = pick()
        ports[f"CLINIC_{svc.upper()}_WORKER_METRICS_PORT"] = pick(metrics)
    ports["CLINIC_MAIL_SINK_PORT"] = pick()  # the message sink's (infra/message_sink.py)
    ports["CLINIC_SMS_SINK_PORT"] = pick()
    if tls_proxy:
        ports["CLINIC_PROXY_HTTPS_PORT"] = pick()
        ports["CLINIC_PROXY_HTTP_PORT"] = pick()
    return ports


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def stack_env(state_dir: Path, tls_proxy: bool = False, brokers: int | None = None,
              worker_replicas: int = 1) -> dict[str, str]:
    """brokers: CLINIC_KAFKA_BROKERS (default: the test run's, kafka_brokers());
    worker_replicas: CLINIC_WORKER_REPLICAS."""
    brokers = kafka_brokers() if brokers is None else brokers
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
        "CLINIC_STATE_DIR": str(state_dir),
        "CLINIC_DEMO": "0",
        # All requests come from 127.0.0.1, and the load's kiosks send hundreds of reports:
        # limits no test trips unless it sets its own (tests/integration/test_auth_limits.py).
        "CLINIC_AUTH_FAILURES_PER_ADDRESS": "100000", "CLINIC_AUTH_FAILURES_PER_CREDENTIAL": "100000",
        "CLINIC_KIOSK_REPORTS_PER_HOUR": "100000",
        "CLINIC_KAFKA_LIB_DIR": str(kafka_lib_dir()),
        "CLINIC_KAFKA_BROKERS": str(brokers),
        "CLINIC_WORKER_REPLICAS": str(worker_replicas),
        **stack_ports(tls_proxy, brokers, worker_replicas),
    }
    if tls_proxy:  # the stack starts the proxy last (infra/proxy) and tells the APIs to trust it
        env["CLINIC_TLS_PROXY"] = "1"
    # No secret given: the stack makes its own (random, under state_dir/secrets/), and the
    # tests' `clinic` calls find them there, as a developer's do.
    base = int(env["CLINIC_KAFKA_PORT"])
    env["CLINIC_KAFKA_BOOTSTRAP"] = ",".join(f"127.0.0.1:{base + 2 * n}" for n in range(brokers))
    return env


@contextlib.contextmanager
def running_stack(prefix: str, keep: bool = False, ready_timeout: float = 300,
                  tls_proxy: bool = False, brokers: int | None = None, worker_replicas: int = 1) -> Iterator[LiveStack]:
    state_dir = Path(tempfile.mkdtemp(prefix=prefix))
    stack = LiveStack(state_dir, stack_env(state_dir, tls_proxy, brokers, worker_replicas))
    try:
        with open(state_dir / "stack-console.log", "wb") as console:
            stack.proc = subprocess.Popen([sys.executable, "-m", "infra.stack"], env=stack.env, cwd=REPO,
                                          stdout=console, stderr=subprocess.STDOUT)
            try:
                wait_ready(stack, timeout=ready_timeout)
                from tests.kafka_support import remember_admin

                remember_admin(stack.env["CLINIC_KAFKA_BOOTSTRAP"], stack.kafka_security())
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
