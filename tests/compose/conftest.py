"""The compose stack (docker-compose.yml) run for real, through Podman: `make compose-test`.

This folder needs what `make compose-test` (infra/containers/compose_test.py) sets up
first: the images, `podman system service` and its healthcheck ticker. It sets
CLINIC_COMPOSE_TEST=1; without it these tests are not collected at all (so a plain
`make test` neither runs nor reports them as skipped).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

if os.environ.get("CLINIC_COMPOSE_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]

REPO = Path(__file__).resolve().parents[2]
# docker-compose.yml publishes the proxy's ports alone; the tests reach Kafka from the host
# (as clinic-admin and the services' principals), so they add the host-access file, as ops
# do for `clinic` on the host (docs/compose.md).
COMPOSE_FILES = ("-f", str(REPO / "docker-compose.yml"),
                 "-f", str(REPO / "infra" / "containers" / "compose.host-access.yml"))
PROJECT = os.environ.get("CLINIC_COMPOSE_PROJECT", "clinic-compose-test")
APIS = ("intake", "triage", "referral")
ROLES = tuple(svc.upper() for svc in APIS)
WORKERS = tuple(f"{svc}-worker" for svc in APIS)
ONE_SHOTS = ("migrate", "topics")
# The three Kafka brokers (docker-compose.yml; node 1 keeps the name `kafka`).
BROKERS = ("kafka", "kafka-2", "kafka-3")
WITH_HEALTHCHECK = ("postgres", *BROKERS, *APIS, "proxy", "prometheus")
LONG_RUNNING = ("postgres", *BROKERS, *APIS, *WORKERS, "proxy", "prometheus")

# Figures for the summary at the end of the run: phase -> seconds, container -> memory,
# service -> seconds after `up -d` began until it was healthy (one-shots: exited 0).
PHASES: dict[str, float] = {}
MEMORY: dict[str, str] = {}
READY: dict[str, float] = {}


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ComposeStack:
    """docker-compose against the Docker API in DOCKER_HOST, plus podman for what compose
    cannot do (inspect a container's health and restart count, SIGKILL its process)."""

    def __init__(self):
        ports = {name: free_port() for name in ("PROXY_HTTPS", "PROXY_HTTP", "PG", "KAFKA", "KAFKA_2", "KAFKA_3")}
        self.tls_dir = Path(tempfile.mkdtemp(prefix="clinic-compose-tls-"))
        cert, key = self.tls_dir / "cert.pem", self.tls_dir / "key.pem"
        # A self-signed pair for the proxy, as an operator's certificate would be given.
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
        for path in (cert, key):  # read by the proxy's unprivileged user (the folder is the host user's)
            path.chmod(0o644)
        self.ca_bundle = str(cert)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_") or k in (
                "CLINIC_POSTGRES_IMAGE", "CLINIC_KAFKA_IMAGE", "CLINIC_PROXY_IMAGE")},
            **{f"CLINIC_{name}_PORT": str(port) for name, port in ports.items()},
            # The compose file has no secret defaults: every one is given, random, as the
            # docs tell an operator to (the passwords go through every service for real).
            **{f"CLINIC_{role}_DB_PASSWORD": secrets.token_urlsafe(18) for role in ("ADMIN", *ROLES)},
            **{f"CLINIC_{role}_SECRET_KEY": secrets.token_hex(32) for role in ROLES},
            **{f"CLINIC_KAFKA_{principal}_PASSWORD": secrets.token_hex(24)
               for principal in ("BROKER", "CLINIC_ADMIN", *ROLES)},
            "CLINIC_DEMO": "1",  # the demo provider's free slots are what referrals book
            "CLINIC_TLS_CERT_FILE": str(cert),
            "CLINIC_TLS_KEY_FILE": str(key),
        }
        # Everything goes through the proxy, the one published port: the contract's paths
        # route to their service, each service's health under /<service>/.
        self.https_url = f"https://127.0.0.1:{ports['PROXY_HTTPS']}"
        self.http_url = f"http://127.0.0.1:{ports['PROXY_HTTP']}"
        self.base_url = {svc: self.https_url for svc in APIS}
        # Every broker's host port: a client on the host reaches the cluster through any.
        self.kafka_bootstrap = ",".join(f"127.0.0.1:{ports[name]}" for name in ("KAFKA", "KAFKA_2", "KAFKA_3"))

    def kafka_security(self, principal: str = "clinic-admin") -> dict:
        """kafka-python settings that authenticate to the stack's broker as `principal`."""
        from services.common.kafka_io import sasl_config

        setting = f"CLINIC_KAFKA_{principal.upper().replace('-', '_')}_PASSWORD"
        return sasl_config(principal, self.env[setting])

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(["docker-compose", "-p", PROJECT, *COMPOSE_FILES, *args],
                                cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}: {result.stderr[-3000:]}"
        return result

    def clinic(self, *argv: str) -> str:
        """`docker-compose run --rm migrate clinic ...` (the compose file's header): its stdout."""
        return self.compose("run", "--rm", "-T", "migrate", "clinic", *argv, timeout=120).stdout.strip()

    def containers(self) -> dict[str, dict]:
        """service -> `podman inspect` of its one container (two podman calls for them all:
        docker-compose's own start-up costs a second of CPU per call)."""
        found = self.replicas()
        for service, infos in found.items():
            assert len(infos) == 1, f"{service}: {len(infos)} containers"
        return {service: infos[0] for service, infos in found.items()}

    def replicas(self) -> dict[str, list[dict]]:
        """service -> `podman inspect` of each of its containers."""
        ids = subprocess.run(["podman", "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.split()
        if not ids:
            return {}
        result = subprocess.run(["podman", "inspect", *ids], capture_output=True, text=True, check=True, timeout=60)
        found: dict[str, list[dict]] = {}
        for info in json.loads(result.stdout):
            labels = info["Config"]["Labels"]
            if labels.get("com.docker.compose.oneoff") == "True":  # a `docker-compose run` container
                continue
            found.setdefault(labels["com.docker.compose.service"], []).append(info)
        return found

    def container(self, service: str) -> dict:
        found = self.containers()
        assert service in found, f"no container for {service}: {sorted(found)}"
        return found[service]

    def logs(self, tail: int = 40) -> str:
        return subprocess.run(["docker-compose", "-p", PROJECT, *COMPOSE_FILES, "logs", "--no-color", f"--tail={tail}"],
                              cwd=REPO, env=self.env, capture_output=True, text=True, timeout=120).stdout

    def up(self, timeout: float = 420) -> dict[str, float]:
        """`up -d`, then wait until every one-shot exited 0 and every other container is
        running, and healthy if it has a check. Returns when (seconds after `up -d` began)
        each service first got there: watched while `up -d` runs, which itself waits for
        the healthy and completed services the others depend on."""
        started = time.monotonic()
        deadline = started + timeout
        with subprocess.Popen(["docker-compose", "-p", PROJECT, *COMPOSE_FILES, "up", "-d", "--no-build"], cwd=REPO, env=self.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as up:
            try:
                return self._watch(up, started, deadline, timeout)
            finally:
                if up.poll() is None:
                    up.kill()

    def _watch(self, up: subprocess.Popen, started: float, deadline: float, timeout: float) -> dict[str, float]:
        ready: dict[str, float] = {}
        while True:
            if up.poll() is not None:
                output = up.stdout.read()
                assert up.returncode == 0, f"docker-compose up -d failed:\n{output[-3000:]}\n{self.logs()}"
            containers = self.containers()
            pending = []
            for service in (*ONE_SHOTS, *LONG_RUNNING):
                state = containers[service]["State"] if service in containers else {"Status": "absent"}
                if service in ONE_SHOTS:
                    done = state["Status"] == "exited"
                    assert not done or state["ExitCode"] == 0, f"{service} failed:\n{self.logs()}"
                else:
                    done = state["Status"] == "running" and (
                        service not in WITH_HEALTHCHECK or health(state) == "healthy")
                if done:
                    ready.setdefault(service, time.monotonic() - started)
                else:
                    pending.append(f"{service}: {state['Status']} {health(state) or ''}".strip())
            if not pending and up.returncode is not None:
                return ready
            assert time.monotonic() < deadline, f"not healthy after {timeout:g} s: {pending}\n{self.logs()}"
            time.sleep(1)

    def memory(self) -> dict[str, str]:
        result = subprocess.run(["podman", "stats", "--no-stream", "--format", "json"],
                                capture_output=True, text=True, check=True, timeout=60)
        services = {info["Id"][:12]: service for service, info in self.containers().items()}
        return {services[row["id"][:12]]: row["mem_usage"].split(" / ")[0]
                for row in json.loads(result.stdout) if services.get(row["id"][:12]) in LONG_RUNNING}


def health(state: dict) -> str | None:
    # Podman names it Healthcheck; its Docker-compatible inspect calls it Health.
    found = state.get("Health") or state.get("Healthcheck") or {}
    return found.get("Status") or None


@pytest.fixture(scope="session")
def stack():
    assert os.environ.get("DOCKER_HOST"), "run through `make compose-test`: it starts the Podman service"
    stack = ComposeStack()
    # requests (here and in tests/e2e's helpers) trusts the proxy's self-signed certificate.
    os.environ["REQUESTS_CA_BUNDLE"] = stack.ca_bundle
    started = time.monotonic()
    try:
        READY.update(stack.up())
        PHASES["up -d until every container is healthy"] = time.monotonic() - started
        yield stack
    finally:
        started = time.monotonic()
        stack.compose("down", "-v", "--remove-orphans")
        PHASES["down -v"] = time.monotonic() - started
        shutil.rmtree(stack.tls_dir, ignore_errors=True)
    left = subprocess.run(["podman", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert not left, f"down -v left volumes behind: {left}"


def pytest_terminal_summary(terminalreporter):
    if not PHASES and not MEMORY and not READY:
        return
    write = terminalreporter.write_line
    terminalreporter.section("compose stack figures")
    if build := os.environ.get("CLINIC_COMPOSE_BUILD_SECONDS"):
        write(f"  {'images (build, or check they are up to date)':48} {float(build):7.1f} s")
    for phase, seconds in PHASES.items():
        write(f"  {phase:48} {seconds:7.1f} s")
    if READY:
        write("  each service healthy (one-shots: exited 0), seconds after `up -d` began:")
        write("    " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in sorted(READY.items(), key=lambda i: i[1])))
    if MEMORY:
        write("  memory per container after the flow (podman stats --no-stream):")
        for name, usage in sorted(MEMORY.items()):
            write(f"    {name:20} {usage}")
