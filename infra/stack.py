"""`make run`: the whole stack on this machine, in the foreground, until Ctrl-C.

    python -m infra.stack

Starts PostgreSQL, a single-node Kafka broker (CLINIC_KAFKA_BROKERS=3: a three-broker
cluster, infra/kafka/cluster.py, docs/kafka-cluster.md), the local message sink (where
the patient messages of the demo land: infra/message_sink.py) and, for each
service, its API (gunicorn) and its worker (`clinic worker <svc>`; CLINIC_WORKER_REPLICAS=N:
N of them in the service's consumer group, sharing its topics' partitions); waits until every API
answers /readyz; seeds the demo data once (unless CLINIC_DEMO=0); prints where
everything is; then supervises (infra/supervisor.py): a child that dies is
restarted with backoff. Ctrl-C or SIGTERM stops the services and workers,
then Kafka, then PostgreSQL, and exits 0.

Children write to <state>/logs/<name>.log; the console only shows this
supervisor's own lines (also kept in <state>/logs/stack.log).

Exit codes: 0 after a requested stop; 2 when a preflight check fails (another
`make run` on the same state folder, a port in use, java, mvn or PostgreSQL
missing); 1 when something fails while starting. Errors are one line on stderr.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from infra.kafka.cluster import LocalKafkaCluster
from infra.kafka.runner import LocalKafka
from infra.kafka.runner import check_java
from infra.kafka.runner import marker as jars_marker
from infra.kafka.runner import pom_hash
from infra.message_sink import LocalMessageSink, mail_dir, sms_file
from infra.postgres import InfraError, LocalPostgres, find_bin_dir, stop_stale
from infra.proxy.runner import DEFAULT_HTTP_PORT as PROXY_HTTP_PORT
from infra.proxy.runner import DEFAULT_HTTPS_PORT as PROXY_HTTPS_PORT
from infra.proxy.runner import LocalProxy, nginx_binary
from infra.supervisor import ManagedProcess, ShutdownRequested, StartError, Supervisor, spawn
from services.admin.topics import PARTITIONS, Retention, TopicError
from infra.local_secrets import ensure_local_secret, write_private
from services.common import settings as settings_module
from services.common.secret_sources import local_secrets_dir, read_secret
from services.common.settings import SERVICES, kafka_password_setting, secret_key_setting

log = logging.getLogger("clinic.stack")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_API_PORTS = {"intake": 8001, "triage": 8002, "referral": 8003}
# Each worker process serves its own /metrics (consumer and relay counters) here.
DEFAULT_WORKER_METRICS_PORTS = {"intake": 9101, "triage": 9102, "referral": 9103}
# The local message sink's SMTP port and SMS gateway port (the ports MailHog/Mailpit made usual).
DEFAULT_MAIL_SINK_PORT, DEFAULT_SMS_SINK_PORT = 1025, 8025
# The sink's bearer token under <state>/secrets/. Not CLINIC_SMS_GATEWAY_TOKEN itself: settings
# read that name from there too, and an operator's own gateway must not be sent our token.
SMS_SINK_TOKEN = "CLINIC_SMS_SINK_TOKEN"
# What the demo's patient messages say about the clinic, unless the environment says otherwise.
DEMO_CLINIC = {
    "CLINIC_NAME": "Hip Clinic",
    "CLINIC_CONTACT_PHONE": "+44 20 7946 0000",  # Ofcom's range for drama: nobody's number
    "CLINIC_TIME_ZONE": "Europe/London",
}
DEMO_SMTP_FROM = "Hip Clinic <appointments@clinic.localhost>"
READY_TIMEOUT = 180.0
# A service process that exits this often before the stack is ready will not
# get better by waiting out READY_TIMEOUT: fail early and point at its log.
GIVE_UP_AFTER_EXITS = 3
SEED_TIMEOUT = 120.0
# Graces before SIGKILL: APIs and workers 12 s (gunicorn's graceful_timeout
# is 10 s); Kafka 15 s (it usually stops in 1-2 s, now and then in ~11);
# PostgreSQL's fast shutdown 6 s. The supervisor trims the later ones if
# needed so that the whole stop fits in SHUTDOWN_BUDGET.
API_GRACE, KAFKA_GRACE, PG_GRACE = 12.0, 15.0, 6.0
PROXY_GRACE = 5.0  # nginx's graceful stop (QUIT) waits for requests in flight
SINK_GRACE = 5.0  # the sink stops in well under a second
SHUTDOWN_BUDGET = 30.0
# CLINIC_KAFKA_BROKERS: one broker, or the three-broker cluster (replication factor 3 needs 3).
KAFKA_BROKER_CHOICES = (1, 3)
# Worker replica n (n >= 2) of a service serves its metrics on the first replica's port + 10(n-1).
METRICS_PORT_STRIDE = 10


class PreflightError(Exception):
    """The stack cannot start as configured; one line saying what to do (exit 2)."""


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    host: str
    pg_port: int
    kafka_port: int
    api_ports: Mapping[str, int]
    demo: bool
    worker_metrics_ports: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_WORKER_METRICS_PORTS))
    # Kafka jars shared between state folders (tests set it); None: <state>/kafka/lib.
    kafka_lib_dir: Path | None = None
    # The TLS proxy (infra/proxy, CLINIC_TLS_PROXY=1) in front of the APIs, and its ports.
    tls_proxy: bool = False
    proxy_https_port: int = PROXY_HTTPS_PORT
    proxy_http_port: int = PROXY_HTTP_PORT
    mail_sink_port: int = DEFAULT_MAIL_SINK_PORT
    sms_sink_port: int = DEFAULT_SMS_SINK_PORT
    # CLINIC_KAFKA_BROKERS: node n on kafka_port + 2(n-1), its controller on the next port.
    kafka_brokers: int = 1
    # CLINIC_WORKER_REPLICAS: worker processes per service, one consumer group each.
    worker_replicas: int = 1

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker's address: clients find the cluster through whichever is up."""
        return self.kafka().bootstrap

    def worker_metrics_port(self, svc: str, replica: int) -> int:
        return self.worker_metrics_ports[svc] + METRICS_PORT_STRIDE * (replica - 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StackConfig:
        return cls(
            state_dir=Path(env.get("CLINIC_STATE_DIR") or REPO_ROOT / ".state").absolute(),
            host="127.0.0.1",
            pg_port=_port_from_env(env, "CLINIC_PG_PORT", 55432),
            kafka_port=_port_from_env(env, "CLINIC_KAFKA_PORT", 9092),
            api_ports={
                svc: _port_from_env(env, f"CLINIC_{svc.upper()}_PORT", default)
                for svc, default in DEFAULT_API_PORTS.items()
            },
            worker_metrics_ports={
                svc: _port_from_env(env, f"CLINIC_{svc.upper()}_WORKER_METRICS_PORT", default)
                for svc, default in DEFAULT_WORKER_METRICS_PORTS.items()
            },
            demo=env.get("CLINIC_DEMO", "1") != "0",
            kafka_lib_dir=Path(env["CLINIC_KAFKA_LIB_DIR"]) if env.get("CLINIC_KAFKA_LIB_DIR") else None,
            tls_proxy=env.get("CLINIC_TLS_PROXY", "0") not in ("", "0"),
            proxy_https_port=_port_from_env(env, "CLINIC_PROXY_HTTPS_PORT", PROXY_HTTPS_PORT),
            proxy_http_port=_port_from_env(env, "CLINIC_PROXY_HTTP_PORT", PROXY_HTTP_PORT),
            mail_sink_port=_port_from_env(env, "CLINIC_MAIL_SINK_PORT", DEFAULT_MAIL_SINK_PORT),
            sms_sink_port=_port_from_env(env, "CLINIC_SMS_SINK_PORT", DEFAULT_SMS_SINK_PORT),
            kafka_brokers=_count_from_env(env, "CLINIC_KAFKA_BROKERS", KAFKA_BROKER_CHOICES),
            worker_replicas=_count_from_env(env, "CLINIC_WORKER_REPLICAS", range(1, PARTITIONS + 1)),
        )

    def proxy(self) -> LocalProxy:
        return LocalProxy(self.state_dir, self.host, self.proxy_https_port, self.proxy_http_port,
                          upstreams={svc: f"{self.host}:{port}" for svc, port in self.api_ports.items()})

    def kafka(self) -> LocalKafka | LocalKafkaCluster:
        if self.kafka_brokers > 1:
            return LocalKafkaCluster.on_port_range(self.state_dir, self.kafka_port, self.kafka_brokers,
                                                   self.host, lib_dir=self.kafka_lib_dir)
        return LocalKafka(self.state_dir, self.kafka_port, self.host, lib_dir=self.kafka_lib_dir)

    def kafka_nodes(self) -> list[LocalKafka]:
        kafka = self.kafka()
        return kafka.nodes if isinstance(kafka, LocalKafkaCluster) else [kafka]

    def message_sink(self) -> LocalMessageSink:
        return LocalMessageSink(self.state_dir, self.mail_sink_port, self.sms_sink_port,
                                token_file=local_secrets_dir(self.state_dir) / SMS_SINK_TOKEN, host=self.host)


def _count_from_env(env: Mapping[str, str], name: str, allowed: Sequence[int]) -> int:
    raw = env.get(name, "").strip() or "1"
    if not raw.isdigit() or int(raw) not in allowed:
        choices = " or ".join(map(str, allowed)) if len(allowed) <= 2 else f"{allowed[0]} to {allowed[-1]}"
        why = {"CLINIC_KAFKA_BROKERS": "one broker, or the three-broker cluster",
               "CLINIC_WORKER_REPLICAS": f"each topic has {PARTITIONS} partitions: a replica beyond that "
                                         "would get none (docs/kafka-cluster.md)"}[name]
        raise PreflightError(f"{name}={raw!r}: set it to {choices} ({why})")
    return int(raw)


def _port_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PreflightError(f"{name}={raw!r} is not a port number; set it to one between 1 and 65535")
    return int(raw)


# --- entry point ------------------------------------------------------------


def main() -> int:
    try:
        config = StackConfig.from_env(os.environ)
        config.logs_dir.mkdir(parents=True, exist_ok=True)
        with _logging_to(config.logs_dir / "stack.log"), _exclusive_lock(config.state_dir):
            preflight(config)
            return run(config)
    except PreflightError as exc:
        return _fail(exc, 2)
    except (StartError, InfraError, TopicError) as exc:
        return _fail(exc, 1)
    except KeyboardInterrupt:  # Ctrl-C before anything was started
        return 130


def _fail(exc: Exception, code: int) -> int:
    print(f"make run: {exc}", file=sys.stderr, flush=True)
    return code


@contextmanager
def _logging_to(stack_log: Path) -> Iterator[None]:
    """Supervisor lines on the console (stdout) and in logs/stack.log."""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter("%(asctime)s [stack] %(message)s", "%H:%M:%S"))
    logfile = logging.FileHandler(stack_log)
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (console, logfile):
        root.addHandler(handler)
    # kafka-python narrates every admin-client connection at INFO.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        yield
    finally:
        for handler in (console, logfile):
            root.removeHandler(handler)
            handler.close()


@contextmanager
def _exclusive_lock(state_dir: Path) -> Iterator[None]:
    """One `make run` per state folder: an flock the kernel drops when we die."""
    path = state_dir / "stack.lock"
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise PreflightError(
                f"another `make run` (pid {holder}) is already running on {state_dir}; "
                "stop it with Ctrl-C first, or set CLINIC_STATE_DIR to another folder"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


# --- preflight --------------------------------------------------------------


def preflight(config: StackConfig) -> None:
    try:
        # A PostgreSQL left running by a killed `make run` is named as such,
        # rather than as a mere port in use.
        stop_stale(config.state_dir)
        _check_ports(config)
        check_java()  # JAVA_HOME or PATH, and Java 17+
        find_bin_dir()  # CLINIC_PG_BIN, /usr/lib/postgresql/*/bin or PATH
        if config.tls_proxy:
            nginx_binary()  # CLINIC_NGINX or PATH
    except InfraError as exc:
        raise PreflightError(str(exc)) from None
    _check_mvn(config)
    _check_clinic_command()


def _ports(config: StackConfig) -> list[tuple[int, str, str]]:
    """(port, what, environment variable) for every port the stack listens on."""
    ports = [(config.api_ports[svc], f"{svc} API", f"CLINIC_{svc.upper()}_PORT") for svc in SERVICES]
    ports += [(config.worker_metrics_port(svc, n), f"{svc} worker {worker_name(svc, n)} metrics",
               f"CLINIC_{svc.upper()}_WORKER_METRICS_PORT")
              for svc in SERVICES for n in range(1, config.worker_replicas + 1)]
    ports += [(config.mail_sink_port, "the message sink (SMTP)", "CLINIC_MAIL_SINK_PORT"),
              (config.sms_sink_port, "the message sink (SMS gateway)", "CLINIC_SMS_SINK_PORT")]
    if config.tls_proxy:
        ports += [(config.proxy_https_port, "the TLS proxy (HTTPS)", "CLINIC_PROXY_HTTPS_PORT"),
                  (config.proxy_http_port, "the TLS proxy (HTTP)", "CLINIC_PROXY_HTTP_PORT")]
    for node in config.kafka_nodes():
        what = "Kafka" if config.kafka_brokers == 1 else f"Kafka node {node.node_id}"
        ports += [(node.port, what, "CLINIC_KAFKA_PORT"),
                  (node.controller_port, f"the controller of {what}", "CLINIC_KAFKA_PORT")]
    return ports + [(config.pg_port, "PostgreSQL", "CLINIC_PG_PORT")]


def _check_ports(config: StackConfig) -> None:
    seen: dict[int, str] = {}
    for port, what, variable in _ports(config):
        if port in seen:
            raise PreflightError(f"{what} and {seen[port]} would both use port {port}; "
                                 f"set {variable} to another port")
        seen[port] = what
        if not _port_free(config.host, port):
            raise PreflightError(
                f"port {port} ({what}) on {config.host} is already in use; "
                f"stop what listens there or set {variable} to a free port"
            )


def _port_free(host: str, port: int) -> bool:
    # SO_REUSEADDR (create_server's default), as every server here sets it:
    # a port with only TIME_WAIT connections left is free for them too.
    try:
        with socket.create_server((host, port)):
            return True
    except OSError:
        return False


def _check_mvn(config: StackConfig) -> None:
    if jars_marker(config.kafka_nodes()[0].lib_dir) != pom_hash() and shutil.which("mvn") is None:
        raise PreflightError("mvn not found on PATH; it fetches the Kafka jars once (apt-get install maven)")


def clinic_command() -> Path:
    """The `clinic` console script of the Python running us (the project venv)."""
    return Path(sys.executable).parent / "clinic"


def _check_clinic_command() -> None:
    if not clinic_command().exists():
        raise PreflightError(f"{clinic_command()} not found; start the stack with `make run`, "
                             "which installs the project into .venv/ first")


# --- the run ----------------------------------------------------------------


def run(config: StackConfig) -> int:
    pg = LocalPostgres(config.state_dir, config.pg_port, host=config.host)
    kafka = config.kafka()
    sup = Supervisor(shutdown_budget=SHUTDOWN_BUDGET)
    with sup.handling_signals():
        try:
            start_all(sup, config, pg, kafka)
            sup.run()
        except ShutdownRequested as signal_name:
            log.info("%s received: stopping", signal_name)
        finally:
            sup.shutdown()
    log.info("everything stopped")
    return 0


def start_all(sup: Supervisor, config: StackConfig, pg: LocalPostgres, kafka: LocalKafka) -> None:
    pg.ensure_initialized()
    sup.start(ManagedProcess("postgres", pg.start, ready_fn=pg.wait_ready, stop_fn=pg.stop,
                             tier=0, grace=PG_GRACE, log_path=config.logs_dir / "postgres.log"))
    pg.bootstrap()

    kafka.ensure_jars()
    kafka.ensure_formatted()
    if isinstance(kafka, LocalKafkaCluster):
        # A node's broker serves only once a quorum of controllers is up: each is started
        # on its controller port alone, then the cluster is waited for as a whole.
        for node in kafka.nodes:
            sup.start(ManagedProcess(node.name, node.start, ready_fn=node.wait_controller_listening,
                                     stop_fn=node.stop, tier=1, grace=KAFKA_GRACE, log_path=node.log_path))
        kafka.wait_ready()
    else:
        sup.start(ManagedProcess("kafka", kafka.start, ready_fn=kafka.wait_ready, stop_fn=kafka.stop,
                                 tier=1, grace=KAFKA_GRACE, log_path=config.logs_dir / "kafka.log"))
    # Topics with the retention the settings ask for, and each service principal's ACLs.
    kafka.ensure_topics(retention=Retention.from_settings(settings_module.load(env=os.environ)))

    # Before the services: the intake worker may send a message as soon as it starts.
    ensure_local_secret(config.state_dir, SMS_SINK_TOKEN)
    sink = config.message_sink()
    sup.start(ManagedProcess("message-sink", lambda: sink.start(config.logs_dir / "message-sink.log", REPO_ROOT),
                             ready_fn=sink.wait_ready, tier=1, grace=SINK_GRACE,
                             log_path=config.logs_dir / "message-sink.log"))

    services = []
    for svc in SERVICES:
        env = service_env(config, svc, pg.role_url(svc), _service_secret_key(config.state_dir, svc))
        if svc == "intake":  # the service that tells patients (docs/patient-messages.md)
            env = patient_message_env(config, env)
        # The API's gunicorn workers add up their metrics in a folder of its own
        # (emptied by services/common/gunicorn_conf.py at its start); the worker serves its own.
        api_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(config.state_dir / "metrics" / f"{svc}-api")}
        services.append(_service_process(config, f"{svc}-api", api_argv(svc), api_env))
        for n in range(1, config.worker_replicas + 1):
            worker_env = {**env, "CLINIC_METRICS_BIND": f"{config.host}:{config.worker_metrics_port(svc, n)}"}
            services.append(_service_process(config, worker_name(svc, n), worker_argv(svc), worker_env))
    for mp in services:
        sup.start(mp)
    wait_until_ready(sup, config, services)
    if config.tls_proxy:
        proxy = config.proxy()
        # Last to start, first to stop: no request reaches a service being stopped.
        sup.start(ManagedProcess("proxy", lambda: proxy.start(config.logs_dir / "proxy.log"),
                                 ready_fn=proxy.wait_ready, stop_fn=proxy.stop, tier=3, grace=PROXY_GRACE,
                                 log_path=config.logs_dir / "proxy.log"))

    credentials = demo_credentials(config, pg) if config.demo else None
    print(summary(config, credentials), flush=True)


def api_argv(svc: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--config", "python:services.common.gunicorn_conf",
            f"services.{svc}.app:create_app()"]


def worker_name(svc: str, replica: int) -> str:
    """intake-worker, then intake-worker-2, -3...: the first keeps the name (and log) it
    has without replicas."""
    return f"{svc}-worker" if replica == 1 else f"{svc}-worker-{replica}"


def worker_argv(svc: str) -> list[str]:
    return [str(clinic_command()), "worker", svc]


def _service_process(config: StackConfig, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    log_path = config.logs_dir / f"{name}.log"
    return ManagedProcess(name, lambda: spawn(argv, log_path, env=env, cwd=REPO_ROOT),
                          tier=2, grace=API_GRACE, log_path=log_path)


def service_env(config: StackConfig, svc: str, database_url: str, secret_key: str) -> dict[str, str]:
    """The environment of one service's API and worker: its own database role, and its own
    Kafka principal (the password as a file the broker's runner wrote, not in the environment)."""
    env = {k: v for k, v in os.environ.items()
           if not k.endswith("DATABASE_URL") and k != "PROMETHEUS_MULTIPROC_DIR"
           and not (k.startswith("CLINIC_KAFKA_") and ("PASSWORD" in k or k == "CLINIC_KAFKA_USERNAME"))}
    env.update(_common_env(config))
    env.update(
        CLINIC_SERVICE=svc,
        CLINIC_BIND=f"{config.host}:{config.api_ports[svc]}",
        CLINIC_DATABASE_URL=database_url,
        CLINIC_SECRET_KEY=secret_key,
        CLINIC_KAFKA_USERNAME=svc,
        CLINIC_KAFKA_PASSWORD_FILE=str(local_secrets_dir(config.state_dir) / kafka_password_setting(svc)),
        PYTHONUNBUFFERED="1",  # log lines reach the log file as they happen
    )
    if config.tls_proxy:  # the proxy's X-Forwarded-* are believed (ProxyFix, services/common/web.py)
        env["CLINIC_TRUSTED_PROXY_HOPS"] = "1"
    return env


def patient_message_env(config: StackConfig, env: Mapping[str, str]) -> dict[str, str]:
    """env with the patient-message settings pointed at the local message sink, and demo
    values for what the messages say about the clinic.

    An operator's own server wins: with CLINIC_SMTP_HOST set, every CLINIC_SMTP_* is left as
    given (mixing their host with the sink's port or no-TLS would reach neither); likewise
    every CLINIC_SMS_GATEWAY_* with CLINIC_SMS_GATEWAY_URL set. Otherwise the sink's values
    replace them, and a login, password or STARTTLS meant for another server is dropped (the
    sink takes none); only CLINIC_SMTP_FROM, which any server takes, is kept if given.
    """
    env = dict(env)
    if not using_own_smtp(env):
        for name in ("CLINIC_SMTP_USERNAME", "CLINIC_SMTP_PASSWORD", "CLINIC_SMTP_PASSWORD_FILE"):
            env.pop(name, None)
        env.update(CLINIC_SMTP_HOST=config.host, CLINIC_SMTP_PORT=str(config.mail_sink_port),
                   CLINIC_SMTP_STARTTLS="no")
        env.setdefault("CLINIC_SMTP_FROM", DEMO_SMTP_FROM)
    if not using_own_sms_gateway(env):
        env.pop("CLINIC_SMS_GATEWAY_TOKEN", None)  # it would be read before the _FILE
        sink = config.message_sink()
        env.update(CLINIC_SMS_GATEWAY_URL=sink.sms_url, CLINIC_SMS_GATEWAY_TOKEN_FILE=str(sink.token_file))
        # intake posts with urllib, which sends 127.0.0.1 to an http_proxy unless no_proxy names it.
        for name in ("no_proxy", "NO_PROXY"):
            env[name] = ",".join(filter(None, (env.get(name), config.host)))
    for name, value in DEMO_CLINIC.items():
        env.setdefault(name, value)
    return env


def using_own_smtp(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("CLINIC_SMTP_HOST", "").strip())


def using_own_sms_gateway(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("CLINIC_SMS_GATEWAY_URL", "").strip())


def _common_env(config: StackConfig) -> dict[str, str]:
    """Settings every process (and `clinic`) derives its defaults from."""
    env = {
        "CLINIC_STATE_DIR": str(config.state_dir),
        "CLINIC_PG_HOST": config.host,
        "CLINIC_PG_PORT": str(config.pg_port),
        "CLINIC_KAFKA_BOOTSTRAP": config.kafka_bootstrap,
    }
    env.update({f"CLINIC_{svc.upper()}_PORT": str(port) for svc, port in config.api_ports.items()})
    return env


def _service_secret_key(state_dir: Path, svc: str) -> str:
    """Each service's own signing key: CLINIC_<SVC>_SECRET_KEY if set, else a random one
    kept in the state folder, so that sessions survive restarts and no two services share one."""
    setting = secret_key_setting(svc)
    return read_secret(os.environ, setting, state_dir) or ensure_local_secret(state_dir, setting)


# --- readiness --------------------------------------------------------------


def wait_until_ready(sup: Supervisor, config: StackConfig, services: list[ManagedProcess]) -> None:
    """Until every API answers 200 on /readyz, supervising meanwhile."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = {svc: f"http://{config.host}:{config.api_ports[svc]}/readyz" for svc in SERVICES}
    last_answer = dict.fromkeys(SERVICES, "no answer yet")
    while pending:
        for svc, url in list(pending.items()):
            ok, last_answer[svc] = probe(url)
            if ok:
                log.info("%s is ready", svc)
                del pending[svc]
        for mp in services:
            if mp.exits >= GIVE_UP_AFTER_EXITS:
                raise StartError(f"{mp.name} keeps exiting ({mp.last_exit}) before the stack is ready; "
                                 f"read {mp.log_path}")
        if pending and time.monotonic() >= deadline:
            svc = next(iter(pending))
            raise StartError(
                f"{svc} did not become ready within {READY_TIMEOUT:g} s "
                f"(GET {pending[svc]}: {last_answer[svc]}); read {config.logs_dir / (svc + '-api.log')}"
            )
        if pending:
            sup.sleep(0.5)


def probe(url: str) -> tuple[bool, str]:
    """(True, ...) if url answers 200; else (False, what it answered)."""
    # No proxy: an http_proxy in the environment must not see local probes.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        exc.close()
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, str(getattr(exc, "reason", exc))


# --- demo data and the summary ----------------------------------------------


def demo_credentials(config: StackConfig, pg: LocalPostgres) -> str | None:
    """Seed the demo data once per state folder and return what the seed
    printed. Keys are stored only as hashes, so the printout is kept (mode
    600) to show again on later starts."""
    path = config.state_dir / "demo-credentials.txt"
    if path.exists():
        return path.read_text()
    seed_log = config.logs_dir / "demo-seed.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(_common_env(config), CLINIC_ADMIN_DATABASE_URL=pg.admin_url())
    log.info("seeding demo data (CLINIC_DEMO=0 skips this)")
    with open(seed_log, "ab") as errors:
        result = subprocess.run([str(clinic_command()), "demo", "seed"], env=env, cwd=REPO_ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                timeout=SEED_TIMEOUT, process_group=0)
    if result.returncode != 0:
        log.warning("demo seed failed (exit code %d); the stack runs without demo data; read %s",
                    result.returncode, seed_log)
        return None
    text = result.stdout.decode()
    write_private(path, text)
    return text


def summary(config: StackConfig, credentials: str | None, environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ

    def url(svc: str, path: str) -> str:
        return f"http://{config.host}:{config.api_ports[svc]}{path}"

    lines = [
        "",
        "Clinic referral stack is running. Ctrl-C stops it.",
        f"  kiosk page     {url('intake', '/kiosk')}",
        f"  queue page     {url('referral', '/queue')}",
        "  OpenAPI        " + "  ".join(url(svc, "/openapi.json") for svc in SERVICES),
        "  API metrics    " + "  ".join(url(svc, "/metrics") for svc in SERVICES),
        "  worker metrics " + "  ".join(f"http://{config.host}:{config.worker_metrics_port(svc, n)}/metrics"
                                        for svc in SERVICES for n in range(1, config.worker_replicas + 1)),
        f"  Kafka          {config.kafka_bootstrap}"
        + (f" ({config.kafka_brokers} brokers, every topic on 3 of them)" if config.kafka_brokers > 1 else ""),
        f"  PostgreSQL     {config.host}:{config.pg_port}, database clinic",
        *_patient_message_lines(config, environ),
        f"  logs           {config.logs_dir}/",
        f"  credentials    {clinic_command()} kiosk add NAME | staff add NAME --role scheduler|admin",
    ]
    if config.tls_proxy:
        proxy = config.proxy()
        lines[2:2] = [
            f"  TLS proxy      {proxy.https_url}/kiosk  {proxy.https_url}/queue  "
            f"({proxy.http_url} redirects; CA {proxy.ca_file})",
        ]
    if credentials:
        lines += ["", f"Demo credentials (kept in {config.state_dir / 'demo-credentials.txt'}):"]
        lines += [f"  {line}" for line in credentials.strip().splitlines()]
    elif config.demo:
        lines += ["", "No demo data: the demo seed failed (see logs/demo-seed.log)."]
    return "\n".join(lines) + "\n"


def _patient_message_lines(config: StackConfig, environ: Mapping[str, str]) -> list[str]:
    """Where the patient messages the demo sends land (patient_message_env's choice)."""
    if using_own_smtp(environ):
        email = f"your CLINIC_SMTP_HOST ({environ['CLINIC_SMTP_HOST'].strip()})"
    else:
        email = f"{mail_dir(config.state_dir)}/ (one .eml each; SMTP {config.host}:{config.mail_sink_port})"
    if using_own_sms_gateway(environ):
        sms = "your CLINIC_SMS_GATEWAY_URL"  # not shown: a URL may hold a token
    else:
        sms = f"{sms_file(config.state_dir)} (one JSON line each; {config.message_sink().sms_url})"
    return [f"  patient email  {email}", f"  patient SMS    {sms}"]


if __name__ == "__main__":
    sys.exit(main())
