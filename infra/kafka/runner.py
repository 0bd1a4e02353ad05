"""Local Apache Kafka (KRaft) nodes run from Maven Central jars: the single broker of
`make run`, or one node of the three-broker cluster of infra/kafka/cluster.py.

No Docker here: `pom.xml` pins the broker jars, Maven copies them into
`<state>/kafka/lib` once, and the broker runs as a plain `java` child process
that a supervisor (infra/stack.py), a test fixture or
`python -m infra.kafka.runner start` watches.

Layout under the state dir:
    kafka/lib/               jars, .pom-sha256 (the pom they came from), kafka.jsa
                             (class-data archive for faster starts); may be shared
    kafka/server.properties  rendered from the template next to this file (mode 600: it
                             holds the broker's own password)
    kafka/data/              the KRaft log dir (formatted once, with every principal's
                             SCRAM credential)
    kafka/scram.sha256       which credentials that was (a fingerprint, see _check_credentials)
    secrets/CLINIC_KAFKA_*_PASSWORD  the principals' passwords (infra/local_secrets.py)
    logs/kafka.log           broker stdout+stderr, appended across runs
A cluster's nodes use kafka-1/, kafka-2/... and logs/kafka-1.log... instead (`name`).

Security: SASL/SCRAM-SHA-512 on the client listener, SASL/PLAIN (the broker's own static
user) on the loopback controller listener, StandardAuthorizer with no access where no ACL
allows it. Principals: one per service, clinic-admin (the admin tools; a super user) and
clinic-broker (the broker itself; a super user). The services' ACLs are made with the topics
(services/admin/topics.py).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from infra.lifeline import stop_with_parent
from infra.local_secrets import ensure_local_secret, write_private
from infra.postgres import InfraError
from services.admin.topics import ALL_TOPICS, Retention, TopicError, admin_client, ensure_acls, ensure_topics
from services.common import settings
from services.common.kafka_io import sasl_config
from services.common.settings import KAFKA_ADMIN_PRINCIPAL, KAFKA_PRINCIPALS, kafka_password_setting

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
PROPERTIES_TEMPLATE = HERE / "server.properties"
LOG4J_CONFIG = HERE / "log4j2.properties"

# Fully qualified so that Maven needs no plugin-prefix lookup (works offline from ~/.m2).
COPY_DEPENDENCIES = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
MARKER = ".pom-sha256"
MIN_JAVA = 17
JVM_OPTS = [
    "-Xms256m", "-Xmx512m", "-Djava.awt.headless=true",
    # Not kafka-run-class.sh's G1 tuning: a local broker at low load gains
    # nothing from G1 and the C2 compiler, and on two busy CPUs they cost
    # seconds of startup (measured: ready in 3.8 s instead of 6.3 s, median).
    "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
    # A broker out of memory is better dead (and restarted) than limping.
    "-XX:+ExitOnOutOfMemoryError",
    # The class-data-sharing archive (see _cds_opts) is best effort: never warn.
    "-Xlog:cds=off",
]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CDS_ARCHIVE = "kafka.jsa"  # in lib_dir, so it goes away with the jars it was made from
STOP_GRACE = 20.0  # seconds between SIGTERM and SIGKILL; a clean stop takes ~2 s
# The broker's own principal (inter-broker SCRAM, controller PLAIN); a super user.
BROKER_PRINCIPAL = "clinic-broker"
BROKER_PASSWORD_SETTING = "CLINIC_KAFKA_BROKER_PASSWORD"
SCRAM_ITERATIONS = 8192  # Kafka accepts 4096..16384 for SCRAM-SHA-512
CREDENTIALS_FINGERPRINT = "scram.sha256"


class LocalKafka:
    """One local broker+controller node whose files all live under state_dir/<name>.

    lib_dir (the jars) defaults to $CLINIC_KAFKA_LIB_DIR, else <state_dir>/kafka/lib:
    tests and throwaway stacks point it at the shared cache (<repo>/.state/kafka/lib)
    so that a temp state dir does not fetch 43 MB of jars again.
    controller_port defaults to port + 1. plaintext_port: an extra listener without
    authentication (principal User:ANONYMOUS, which no ACL here allows anything), only for
    measuring what SASL costs (infra/kafka/bench_sasl.py).
    A node of a cluster (infra/kafka/cluster.py) gets its node_id, name, the static
    `voters` (every node's controller listener, "1@host:port,2@...") and the replication
    its topics default to (replicas, min_isr); the default is the single standalone node.
    jvm_opts replaces JVM_OPTS for this node's java commands (a measurement of other JVM
    settings, tests/bench/bench_broker_ack.py); the default is JVM_OPTS.
    """

    def __init__(self, state_dir: Path, port: int = 9092, host: str = "127.0.0.1", *,
                 controller_port: int | None = None, lib_dir: Path | None = None,
                 plaintext_port: int | None = None, node_id: int = 1, name: str = "kafka",
                 voters: str | None = None, replicas: int = 1, min_isr: int = 1,
                 jvm_opts: Sequence[str] | None = None):
        self.state_dir = Path(state_dir).absolute()
        self.jvm_opts = list(JVM_OPTS if jvm_opts is None else jvm_opts)
        self.host = host
        self.port = port
        self.controller_port = controller_port if controller_port is not None else port + 1
        self.plaintext_port = plaintext_port
        self.node_id, self.name, self.voters = node_id, name, voters
        self.replicas, self.min_isr = replicas, min_isr
        self.kafka_dir = self.state_dir / name
        lib_dir = lib_dir or os.environ.get("CLINIC_KAFKA_LIB_DIR") or self.state_dir / "kafka" / "lib"
        self.lib_dir = Path(lib_dir).absolute()
        self.data_dir = self.kafka_dir / "data"
        self.properties = self.kafka_dir / "server.properties"
        self.log_path = self.state_dir / "logs" / f"{name}.log"
        self._proc: subprocess.Popen | None = None
        self._archive_tmp: Path | None = None
        self._started_at = 0.0
        self._log_offset = 0

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    # --- credentials ------------------------------------------------------------

    def passwords(self) -> dict[str, str]:
        """Each principal's password (the services', clinic-admin's and the broker's own),
        random, made on first use under <state>/secrets/ (the settings' local secrets)."""
        found = {principal: ensure_local_secret(self.state_dir, kafka_password_setting(principal))
                 for principal in KAFKA_PRINCIPALS}
        found[BROKER_PRINCIPAL] = ensure_local_secret(self.state_dir, BROKER_PASSWORD_SETTING)
        return found

    def client_security(self, principal: str = KAFKA_ADMIN_PRINCIPAL) -> dict:
        """kafka-python settings that authenticate to this broker as `principal`."""
        return sasl_config(principal, self.passwords()[principal])

    # --- jars ---------------------------------------------------------------

    def ensure_jars(self) -> None:
        """Copy the pom's jars into lib_dir, unless they are already there for this pom."""
        check_java()
        want = pom_hash()
        if marker(self.lib_dir) == want:
            return
        with _file_lock(self.lib_dir.with_name(self.lib_dir.name + ".lock")):
            if marker(self.lib_dir) == want:  # another process fetched them meanwhile
                return
            _fetch_jars(self.lib_dir, want)

    # --- config and storage ---------------------------------------------------

    def ensure_formatted(self, cluster_id: str | None = None, scram: Sequence[str] | None = None) -> None:
        """Write server.properties and format the KRaft log dir the first time, with every
        principal's SCRAM credential (StorageTool --add-scram, as salted hashes: no password
        on a command line). A cluster's nodes are formatted with one cluster_id and the same
        `scram` arguments (scram_arguments()); a single node makes its own."""
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        passwords = self.passwords()
        self._write_properties(passwords[BROKER_PRINCIPAL])
        fingerprint = self.kafka_dir / CREDENTIALS_FINGERPRINT
        if self.formatted:
            self._check_credentials(fingerprint, passwords)
            return
        cluster_id = cluster_id or random_cluster_id()
        log.info("formatting Kafka log dir %s (cluster id %s)", self.data_dir, cluster_id)
        scram = list(scram) if scram is not None else scram_arguments(passwords)
        # A single node starts its own dynamic quorum; a cluster's nodes name the static voters.
        quorum = () if self.voters else ("--standalone",)
        cmd = self._java_cmd("kafka.tools.StorageTool", "format", *quorum,
                             "-t", cluster_id, "-c", str(self.properties), *scram)
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=self.kafka_dir)
        if result.returncode != 0:
            detail = _last_meaningful_line(result.stdout + result.stderr)
            raise InfraError(f"formatting the Kafka log dir {self.data_dir} failed: {detail} "
                             f"(remove that dir to start over)")
        write_private(fingerprint, _credentials_fingerprint(passwords) + "\n")

    @property
    def process(self) -> subprocess.Popen | None:
        """The broker process this object started last (None once stopped)."""
        return self._proc

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").exists()

    def _check_credentials(self, fingerprint: Path, passwords: dict[str, str]) -> None:
        """The log dir holds the SCRAM credentials it was formatted with; the passwords under
        <state>/secrets/ must still be those, or every client would be refused."""
        try:
            recorded = fingerprint.read_text().strip()
        except OSError:
            raise InfraError(f"the Kafka log dir {self.data_dir} was formatted without SASL/SCRAM "
                             f"credentials (before the broker required them); remove that dir "
                             f"(its events are lost; the databases keep everything) and start again") from None
        if recorded != _credentials_fingerprint(passwords):
            raise InfraError(f"the Kafka passwords under {self.state_dir / 'secrets'} are not those the log dir "
                             f"{self.data_dir} was formatted with; restore them, or remove that dir to start over")

    def _write_properties(self, broker_password: str) -> None:
        template = string.Template(PROPERTIES_TEMPLATE.read_text())
        extra = f"BENCH://{self.host}:{self.plaintext_port}" if self.plaintext_port else ""
        quorum = (f"controller.quorum.voters={self.voters}" if self.voters
                  else f"controller.quorum.bootstrap.servers={self.host}:{self.controller_port}")
        text = template.substitute(host=self.host, port=self.port, node_id=self.node_id, quorum=quorum,
                                   replicas=self.replicas, min_isr=self.min_isr,
                                   controller_port=self.controller_port, data_dir=self.data_dir,
                                   extra_listeners="," + extra if extra else "",
                                   extra_advertised="," + extra if extra else "",
                                   broker_user=BROKER_PRINCIPAL, broker_password=broker_password,
                                   admin_user=KAFKA_ADMIN_PRINCIPAL)
        write_private(self.properties, text)

    # --- process ----------------------------------------------------------------

    def start(self) -> subprocess.Popen:
        """Start the broker as a child (its own process group) and return at once."""
        if not (self.data_dir / "meta.properties").exists():
            raise InfraError(f"Kafka log dir {self.data_dir} is not formatted; "
                             f"call ensure_jars() and ensure_formatted() first")
        if self._proc is not None:  # a restart: keep what the last run archived
            self._finish_archive(self._proc)
        ports = [(self.port, "broker"), (self.controller_port, "controller")]
        if self.plaintext_port:
            ports.append((self.plaintext_port, "plaintext (measurement)"))
        for port, what in ports:
            _check_port_free(self.host, port, what)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"=== starting Kafka node {self.node_id} on {self.bootstrap} at {time.ctime()} ===\n".encode())
            out.flush()
            self._log_offset = out.tell()
            # The child keeps its own copy of the descriptor; ours can close at once.
            self._proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.properties), jvm_opts=self._cds_opts()),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.kafka_dir, process_group=0,
                preexec_fn=stop_with_parent(signal.SIGTERM),  # a controlled shutdown if we die
            )
        self._started_at = time.monotonic()
        log.info("started Kafka node %d (pid %d) on %s, log %s", self.node_id, self._proc.pid,
                 self.bootstrap, self.log_path)
        return self._proc

    def wait_controller_listening(self, timeout: float = 60) -> None:
        """Until this node's controller port accepts connections. A cluster's broker serves
        only once a quorum of controllers has elected a leader, so each node is started on
        this alone and the cluster is waited for as a whole (cluster.py)."""
        deadline = time.monotonic() + timeout
        while not _port_open(self.host, self.controller_port):
            self._check_alive()
            if time.monotonic() > deadline:
                raise InfraError(f"Kafka node {self.node_id}'s controller port {self.controller_port} "
                                 f"not open after {timeout:g}s; see {self.log_path}")
            time.sleep(0.2)

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until an admin client can list topics; InfraError if the broker dies or times out."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InfraError(f"Kafka on {self.bootstrap} not ready after {timeout:g}s; "
                                 f"see {self.log_path}")
            # Probe the socket first: a failed admin-client constructor logs
            # errors and leaves its IO thread behind, so only try once it can work.
            if _port_open(self.host, self.port) and self._try_list_topics(remaining):
                break
            time.sleep(0.2)
        if self._started_at:
            log.info("Kafka ready on %s %.1fs after start", self.bootstrap,
                     time.monotonic() - self._started_at)

    def _try_list_topics(self, remaining: float) -> bool:
        budget_ms = int(max(1.0, min(remaining, 10.0)) * 1000)
        try:
            with self.admin(bootstrap_timeout_ms=budget_ms, request_timeout_ms=budget_ms) as admin:
                admin.list_topics()
            return True
        except KafkaError as exc:
            log.debug("Kafka not ready yet: %s", exc)
            return False

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is None:
            return
        detail = _last_meaningful_line(self._log_since_start())
        raise InfraError(f"Kafka exited with code {self._proc.returncode} while starting: "
                         f"{detail} (see {self.log_path})")

    def _log_since_start(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, proc: subprocess.Popen) -> None:
        """SIGTERM (Kafka's clean shutdown), then SIGKILL if it takes over STOP_GRACE seconds."""
        if proc.poll() is None:
            log.info("stopping Kafka (pid %d)", proc.pid)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                log.warning("Kafka (pid %d) still running after %gs: killing it", proc.pid, STOP_GRACE)
                proc.kill()
        proc.wait()
        if proc is self._proc:
            self._finish_archive(proc)
            self._proc = None

    # --- class-data sharing -----------------------------------------------------
    # Loading ~45 jars' classes is most of the broker's startup. Java 17 can
    # archive the loaded classes when a JVM exits (-XX:ArchiveClassesAtExit)
    # and map that archive in later JVMs, which then start in about half the
    # time (measured on two busy CPUs: ready in 3.5 s instead of 7.2 s). The first
    # broker started on a lib_dir writes the archive (its stop takes a few
    # seconds longer); a JVM that cannot use it (another JDK build, say) just
    # runs without it.

    def _cds_opts(self) -> list[str]:
        archive = self.lib_dir / CDS_ARCHIVE
        if archive.exists():
            self._archive_tmp = None
            return [f"-XX:SharedArchiveFile={archive}"]
        _remove_stale_archives(self.lib_dir)
        # A private name: brokers sharing lib_dir may both be writing one.
        self._archive_tmp = self.lib_dir / f"{CDS_ARCHIVE}.{uuid.uuid4().hex[:12]}.tmp"
        return [f"-XX:ArchiveClassesAtExit={self._archive_tmp}"]

    def _finish_archive(self, proc: subprocess.Popen) -> None:
        tmp, self._archive_tmp = self._archive_tmp, None
        if tmp is None:
            return
        # 143 is the JVM's clean exit on SIGTERM; anything else may have cut the dump short.
        if proc.returncode in (0, 143) and tmp.is_file() and tmp.stat().st_size > 0:
            tmp.replace(self.lib_dir / CDS_ARCHIVE)
            log.info("saved Kafka class-data archive %s for faster starts", self.lib_dir / CDS_ARCHIVE)
        else:
            tmp.unlink(missing_ok=True)

    # --- topics -----------------------------------------------------------------

    def admin(self, **configs) -> contextlib.AbstractContextManager[KafkaAdminClient]:
        """A kafka-python admin client for this broker (as clinic-admin), closed on exit."""
        return admin_client(self.bootstrap, self.client_security(), **configs)

    def ensure_topics(self, names: Sequence[str] = ALL_TOPICS, partitions: int = 6,
                      retention: Retention = Retention()) -> None:
        """The topics and the services' ACLs, made as `clinic kafka topics` makes them
        (services/admin/topics.py)."""
        security = self.client_security()
        ensure_topics(self.bootstrap, names, partitions, security=security, retention=retention)
        ensure_acls(self.bootstrap, security)

    @contextlib.contextmanager
    def running(self, topics: Sequence[str] = ALL_TOPICS, ready_timeout: float = 60,
                retention: Retention = Retention()) -> Iterator[subprocess.Popen]:
        """The broker with its jars, storage, topics and ACLs, ready; stopped when the block
        ends, however it ends. For `python -m infra.kafka.runner start` and the test fixtures."""
        self.ensure_jars()
        self.ensure_formatted()
        proc = self.start()
        try:
            self.wait_ready(timeout=ready_timeout)
            self.ensure_topics(topics, retention=retention)
            yield proc
        finally:
            self.stop(proc)

    # --- helpers ----------------------------------------------------------------

    def _java_cmd(self, main_class: str, *args: str, jvm_opts: Sequence[str] = ()) -> list[str]:
        return [
            _java(), *self.jvm_opts, *jvm_opts,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.log_path.parent}",
            "-cp", f"{self.lib_dir}/*",
            main_class, *args,
        ]


# --- jars ---------------------------------------------------------------------------


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise InfraError(f"java not found (JAVA_HOME unset or wrong, none on PATH); "
                         f"Kafka needs Java {MIN_JAVA}+, e.g. apt-get install openjdk-17-jre-headless")
    return found


def check_java() -> None:
    result = subprocess.run([_java(), "-version"], capture_output=True, text=True)
    # e.g. openjdk version "17.0.15" 2025-04-15 (or "1.8.0_392" for Java 8)
    match = re.search(r'version "(?:1\.)?(\d+)', result.stderr)
    if not match or int(match.group(1)) < MIN_JAVA:
        found = match.group(0) if match else result.stderr.strip()[:80]
        raise InfraError(f"Kafka needs Java {MIN_JAVA}+, found {found} ({_java()})")


def pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def marker(lib_dir: Path) -> str | None:
    try:
        return (lib_dir / MARKER).read_text().strip()
    except OSError:
        return None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise jar fetches between processes (a test run and `make run`, say)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fetch_jars(lib_dir: Path, pom_hash: str) -> None:
    """Copy the jars into a fresh temp dir, then swap it in: no stale or half-copied jars."""
    mvn = shutil.which("mvn")
    if not mvn:
        raise InfraError("mvn not found on PATH; it fetches the Kafka jars once "
                         "(apt-get install maven)")
    staging = lib_dir.with_name(lib_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    log.info("fetching Kafka jars into %s with Maven (once; cached in ~/.m2)", lib_dir)
    cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), COPY_DEPENDENCIES,
           f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        detail = _maven_error(result.stdout + result.stderr)
        raise InfraError(f"fetching the Kafka jars with Maven failed: {detail}")
    (staging / MARKER).write_text(pom_hash + "\n")
    shutil.rmtree(lib_dir, ignore_errors=True)
    staging.rename(lib_dir)


def _remove_stale_archives(lib_dir: Path) -> None:
    # A JVM writes its archive only while it exits, which takes seconds, so an
    # old temp archive is the remains of a killed stop (50 MB each).
    for tmp in lib_dir.glob(f"{CDS_ARCHIVE}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > 600:
                tmp.unlink()


# --- credentials ------------------------------------------------------------------


def scram_credential(principal: str, password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """A StorageTool --add-scram argument: the SCRAM-SHA-512 salted password (RFC 5802's
    Hi(), i.e. PBKDF2-HMAC-SHA512) rather than the password itself, which would show in ps."""
    salt = os.urandom(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"SCRAM-SHA-512=[name={principal},iterations={iterations},"
            f'salt="{base64.b64encode(salt).decode()}",saltedpassword="{base64.b64encode(salted).decode()}"]')


def scram_arguments(passwords: dict[str, str]) -> list[str]:
    """StorageTool's --add-scram arguments for every principal (random salts: a cluster's
    nodes are all formatted with the one list)."""
    return [arg for principal, password in sorted(passwords.items())
            for arg in ("--add-scram", scram_credential(principal, password))]


def _credentials_fingerprint(passwords: dict[str, str]) -> str:
    lines = "".join(f"{principal}\0{password}\n" for principal, password in sorted(passwords.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


# --- small helpers ------------------------------------------------------------------


def random_cluster_id() -> str:
    """A Kafka-style id: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's Uuid.randomUuid, never one starting with '-', which a command
    line would read as an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _check_port_free(host: str, port: int, what: str) -> None:
    # create_server sets SO_REUSEADDR as the JVM does, so TIME_WAIT leftovers
    # from a previous broker do not count as taken.
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise InfraError(f"Kafka {what} port {port} on {host} is already in use "
                         f"(another Kafka running?): {exc.strerror}") from exc


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _last_meaningful_line(text: str) -> str:
    """The most telling line of a broker's or tool's output: the last error, else the last line."""
    lines = _clean_lines(text)
    errors = [line for line in lines if re.search(r"\bERROR\b|Exception|Error:", line)]
    return (errors or lines or ["no output"])[-1][:300]


def _maven_error(text: str) -> str:
    """Maven's first [ERROR] line says what failed; the ones after it are advice."""
    lines = _clean_lines(text)
    errors = [line.removeprefix("[ERROR]").strip() for line in lines if line.startswith("[ERROR]")]
    return ([e for e in errors if e] or lines or ["no output"])[0][:300]


def _clean_lines(text: str) -> list[str]:
    # Maven prints colour resets even in batch mode.
    lines = (re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


# --- command line -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.kafka.runner",
                                     description="Run the local Kafka broker in the foreground "
                                                 "($CLINIC_KAFKA_BOOTSTRAP, $CLINIC_STATE_DIR).")
    parser.add_argument("command", choices=["start"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # kafka-python narrates every connection at INFO
    # SIGTERM/SIGHUP too, so that however we are stopped the broker is stopped with us.
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)

    conf = settings.load()
    host, _, port = conf.kafka_bootstrap.split(",")[0].rpartition(":")
    kafka = LocalKafka(conf.state_dir, port=int(port), host=host or "127.0.0.1")
    try:
        return _serve(kafka, Retention.from_settings(conf))
    except (InfraError, TopicError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


def _serve(kafka: LocalKafka, retention: Retention) -> int:
    with kafka.running(retention=retention) as proc:
        log.info("Kafka is up on %s with topics %s; Ctrl-C stops it", kafka.bootstrap, ", ".join(ALL_TOPICS))
        code = proc.wait()
        log.error("Kafka exited on its own with code %d; see %s", code, kafka.log_path)
        return code or 1


def _interrupt(signum, frame) -> None:
    # A second Ctrl-C must not abandon the broker half-stopped; stop() escalates by itself.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
