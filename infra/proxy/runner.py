"""The TLS proxy in front of the local stack: Debian's nginx with a generated certificate.

    CLINIC_TLS_PROXY=1 make run        # the stack with the proxy (infra/stack.py)
    python -m infra.proxy run          # the proxy alone, in front of a stack already running
    python -m infra.proxy render --compose   # the compose configuration (infra/proxy/compose.conf)

Everything it writes is under <state>/proxy/: a local certificate authority's certificate
(`ca.pem`, what a client trusts; its key is deleted once the server certificate is signed),
the server's certificate and key (`server.pem`, `server.key`; localhost, 127.0.0.1, ::1),
the rendered `nginx.conf`, and run/ (pid, temporary files). As root, nginx runs as
`www-data` (Debian's nginx user), which then owns the key and run/.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infra.lifeline import stop_with_parent
from infra.postgres import InfraError, RunAs, _make_traversable

from .config import ProxyParams, render

RUN_AS_USER = "www-data"  # only when we are root; Debian's base system has it
DEFAULT_HTTPS_PORT = 8443
DEFAULT_HTTP_PORT = 8080
CERT_DAYS = 397  # what browsers accept for a server certificate
RENEW_WITHIN_SECONDS = 30 * 86400


def nginx_binary() -> str:
    path = os.environ.get("CLINIC_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(path).exists():
        raise InfraError("nginx not found; install Debian's (apt-get install nginx, or `make deps` as root)")
    return path


def run_as() -> RunAs:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
    else:
        try:
            entry = pwd.getpwnam(RUN_AS_USER)
        except KeyError:
            raise InfraError(f"running as root and no {RUN_AS_USER!r} user to run nginx as") from None
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise InfraError(f"openssl {args[0]} failed: {result.stderr.strip().splitlines()[-1:]}")


@dataclass
class LocalProxy:
    state_dir: Path
    host: str
    https_port: int
    http_port: int
    upstreams: dict[str, str]  # service -> host:port

    @property
    def dir(self) -> Path:
        return self.state_dir / "proxy"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.dir / "server.pem"

    @property
    def key_file(self) -> Path:
        return self.dir / "server.key"

    @property
    def conf_file(self) -> Path:
        return self.dir / "nginx.conf"

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://localhost:{self.http_port}"

    # -- certificate ------------------------------------------------------------

    def ensure_certificate(self) -> None:
        """A server certificate for localhost signed by a local CA, made once and again when
        it is missing or ends within 30 days."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.cert_file.exists() and self.key_file.exists() and self.ca_file.exists():
            still_good = subprocess.run(["openssl", "x509", "-checkend", str(RENEW_WITHIN_SECONDS), "-noout",
                                         "-in", str(self.cert_file)], capture_output=True)
            if still_good.returncode == 0:
                return
        work = self.dir / "issuing"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700)
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", str(CERT_DAYS),
                 "-subj", "/CN=Clinic referral local CA",
                 "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=work)
        _openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
                 cwd=work)
        (work / "server.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS), "-sha256",
                 "-extfile", "server.ext", "-out", "server.pem", cwd=work)
        os.chmod(work / "server.key", 0o600)
        for name in ("ca.pem", "server.pem", "server.key"):
            os.replace(work / name, self.dir / name)
        shutil.rmtree(work)  # the CA's key with it: nothing else can be signed by this CA

    # -- configuration ----------------------------------------------------------

    def params(self) -> ProxyParams:
        return ProxyParams(
            intake_upstream=self.upstreams["intake"],
            triage_upstream=self.upstreams["triage"],
            referral_upstream=self.upstreams["referral"],
            https_listen=f"{self.host}:{self.https_port}",
            http_listen=f"{self.host}:{self.http_port}",
            https_public_port=self.https_port,
            cert_file=str(self.cert_file),
            key_file=str(self.key_file),
            pid_file=str(self.run_dir / "nginx.pid"),
            temp_dir=str(self.run_dir),
        )

    def prepare(self) -> RunAs:
        """Certificate, configuration and run/ in place, and `nginx -t` content with them."""
        self.ensure_certificate()
        self.conf_file.write_text(render(self.params()))
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        user = run_as()
        if not user.is_self:
            _make_traversable(self.dir, user)
            for path in (self.run_dir, self.key_file):
                user.chown(path)
        result = subprocess.run([nginx_binary(), "-t", "-q", "-e", "stderr", "-p", str(self.run_dir),
                                 "-c", str(self.conf_file)], text=True, stdin=subprocess.DEVNULL,
                                # nginx opens /dev/stdout again as `user`: /dev/null lets it
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **user.popen_kwargs())
        if result.returncode != 0:
            raise InfraError(f"nginx refuses {self.conf_file}: {result.stderr.strip()}")
        return user

    # -- the process --------------------------------------------------------------

    def start(self, log_path: Path) -> subprocess.Popen:
        for port in (self.https_port, self.http_port):
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.host, port))
                except OSError:
                    raise InfraError(f"port {port} (TLS proxy) on {self.host} is in use") from None
        user = self.prepare()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            # nginx opens /dev/stdout (its access log) again, as the user it runs as
            user.chown(log_path)
            return subprocess.Popen(
                [nginx_binary(), "-e", "stderr", "-p", str(self.run_dir), "-c", str(self.conf_file)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.run_dir,
                process_group=0, **user.popen_kwargs(),
                # nginx's QUIT is a graceful stop: requests in flight are answered
                preexec_fn=stop_with_parent(signal.SIGQUIT))

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful; the supervisor kills after its grace

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until a TLS handshake with the local CA's trust succeeds on the HTTPS port."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.https_port), timeout=2) as raw:
                    with context.wrap_socket(raw, server_hostname="localhost"):
                        return
            except OSError as exc:
                last = exc
                time.sleep(0.2)
        raise InfraError(f"the TLS proxy did not answer on {self.host}:{self.https_port}: {last}")
