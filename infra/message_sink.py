"""The local message sink of `make run`: where the demo's patient messages land instead of
reaching anyone (docs/patient-messages.md). Development only; no service imports it.

    python -m infra.message_sink --state-dir .state --smtp-port 1025 --sms-port 8025 \
        --token-file .state/secrets/CLINIC_SMS_GATEWAY_TOKEN

- SMTP on 127.0.0.1 (aiosmtpd, no login, no TLS): each message is kept whole as
  <state>/mail/<sequence>-<UTC time>.eml, so that the names sort by arrival.
- HTTP on 127.0.0.1 playing the SMS gateway: `POST /sms` with JSON {"to", "text",
  "reference"}, `Authorization: Bearer <token>` and an `Idempotency-Key` header; each SMS is
  one JSON line of <state>/sms/messages.jsonl and the answer is 202. A key seen before is
  answered 202 again without a second line, as a real gateway would. `GET /healthz` answers
  200 once both servers listen.

One log line per message on stdout. SIGTERM or SIGINT stops both servers and exits 0.
"""
from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("clinic.message_sink")

HOST = "127.0.0.1"
SMS_PATH = "/sms"
MAX_SMS_BODY = 64 * 1024  # a gateway request is a few hundred bytes; refuse anything silly
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request


def mail_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "mail"


def sms_file(state_dir: Path) -> Path:
    return Path(state_dir) / "sms" / "messages.jsonl"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- mail -------------------------------------------------------------------


class MailStore:
    """Writes each message to its own .eml file, named <sequence>-<UTC time>.eml. The
    sequence continues from the files already there, so the names sort by arrival across
    restarts too (a clock that steps back would not reorder them)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the demo's patients' messages
        self._lock = threading.Lock()
        self._last = max((int(p.name.split("-", 1)[0]) for p in folder.glob("*.eml")
                          if p.name.split("-", 1)[0].isdigit()), default=0)

    def save(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        # The envelope is not in the message itself (Bcc, a list's members): keep it in front.
        envelope = (f"X-Sink-Envelope-From: <{mail_from}>\r\n"
                    f"X-Sink-Envelope-To: {', '.join(f'<{r}>' for r in rcpt_tos)}\r\n").encode()
        with self._lock:
            self._last += 1
            path = self.folder / f"{self._last:08d}-{_utc_now():%Y%m%dT%H%M%S.%fZ}.eml"
            # Written aside, then renamed: whoever lists the folder never reads half a message.
            partial = path.with_name(f".{path.name}.partial")
            partial.write_bytes(envelope + content)
            os.replace(partial, path)
        return path


class MailHandler:
    """aiosmtpd's handler: keeps every message it is given and accepts it."""

    def __init__(self, store: MailStore):
        self.store = store

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        path = self.store.save(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        subject = BytesHeaderParser(policy=default_policy).parsebytes(envelope.content).get("subject", "")
        log.info("mail from=%s to=%s subject=%r -> %s", envelope.mail_from, ",".join(envelope.rcpt_tos),
                 str(subject), path.name)
        return "250 Message accepted for delivery"


def start_smtp(store: MailStore, host: str, port: int):
    """An SMTP server on its own thread (aiosmtpd's Controller), listening on return."""
    from aiosmtpd.controller import Controller  # the test extras' package: only the sink needs it

    # server_hostname: aiosmtpd would otherwise ask DNS for this machine's FQDN for its banner.
    controller = Controller(MailHandler(store), hostname=host, port=port, server_hostname="clinic.localhost")
    controller.start()
    return controller


# --- SMS --------------------------------------------------------------------


class SmsStore:
    """Appends each SMS as one JSON line; remembers idempotency keys (also those already in
    the file) so that a repeated request is not a second message."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seen: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self._seen[record["idempotency_key"]] = record["id"]

    def save(self, idempotency_key: str, message: dict[str, str]) -> tuple[str, bool]:
        """(the message's id, whether it is new)."""
        with self._lock:
            if idempotency_key in self._seen:
                return self._seen[idempotency_key], False
            record = {"id": str(uuid.uuid4()), "received_at": _utc_now().isoformat(),
                      "idempotency_key": idempotency_key, **message}
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._seen[idempotency_key] = record["id"]
            return record["id"], True


@dataclass(frozen=True)
class SmsGateway:
    store: SmsStore
    token: str


class SmsRequestHandler(BaseHTTPRequestHandler):
    server: SmsHttpServer
    timeout = REQUEST_TIMEOUT
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/healthz":
            self._answer(HTTPStatus.OK, {"status": "ok"})
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        if self.path != SMS_PATH:
            self._answer(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        gateway = self.server.gateway
        expected = f"Bearer {gateway.token}".encode()
        if not hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected):
            log.warning("sms refused: missing or wrong bearer token")
            self._answer(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"},
                         {"WWW-Authenticate": "Bearer"})
            return
        key = self.headers.get("Idempotency-Key", "").strip()
        if not key:
            self._refuse("an Idempotency-Key header is required")
            return
        message = self._read_message()
        if message is None:
            return
        message_id, new = gateway.store.save(key, message)
        if new:
            log.info("sms to=%s reference=%s text=%r", message["to"], message["reference"],
                     textwrap.shorten(message["text"], 80))
        else:
            log.info("sms repeated (Idempotency-Key %s): not stored again", key)
        self._answer(HTTPStatus.ACCEPTED, {"id": message_id, "status": "accepted"})

    def _read_message(self) -> dict[str, str] | None:
        """The request's {"to", "text", "reference"}, or None once a 4xx is answered."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length is required"})
            return None
        if int(length) > MAX_SMS_BODY:
            self.close_connection = True  # the body stays unread
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return None
        body = self.rfile.read(int(length))
        try:
            message = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            self._refuse("the body is not JSON")
            return None
        if not isinstance(message, dict) or not all(isinstance(message.get(f), str) and message[f].strip()
                                                    for f in ("to", "text", "reference")):
            self._refuse('the body must be {"to", "text", "reference"}, each a non-empty string')
            return None
        return {f: message[f] for f in ("to", "text", "reference")}

    def _refuse(self, why: str) -> None:
        log.warning("sms refused: %s", why)
        self._answer(HTTPStatus.BAD_REQUEST, {"error": why})

    def _answer(self, status: HTTPStatus, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        pass  # one line per SMS is ours (do_POST); no access log besides


class SmsHttpServer(ThreadingHTTPServer):
    def __init__(self, host: str, port: int, gateway: SmsGateway):
        super().__init__((host, port), SmsRequestHandler)
        self.gateway = gateway


# --- the process ------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.message_sink", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="mail/ and sms/ are written here")
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--sms-port", type=int, required=True)
    parser.add_argument("--token-file", type=Path, required=True,
                        help="holds the bearer token the SMS endpoint expects (not in argv: ps shows argv)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd narrates every SMTP command
    token = args.token_file.read_text().strip()
    if not token:
        print(f"message sink: {args.token_file} is empty", file=sys.stderr)
        return 2
    # Stop signals are taken by sigwait below; blocked before any thread starts, so that every
    # thread inherits the mask and none of them is interrupted by one.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    smtp = start_smtp(MailStore(mail_dir(args.state_dir)), HOST, args.smtp_port)
    try:
        http = SmsHttpServer(HOST, args.sms_port, SmsGateway(SmsStore(sms_file(args.state_dir)), token))
        try:
            serving = threading.Thread(target=http.serve_forever, name="sms-http", daemon=True)
            serving.start()
            log.info("message sink: SMTP on %s:%d -> %s/, SMS on http://%s:%d%s -> %s", HOST, args.smtp_port,
                     mail_dir(args.state_dir), HOST, args.sms_port, SMS_PATH, sms_file(args.state_dir))
            received = signal.sigwait(stop_signals)
            log.info("message sink: %s received, stopping", signal.Signals(received).name)
            http.shutdown()
            serving.join()
        finally:
            http.server_close()
    finally:
        smtp.stop()
    return 0


# --- run by the stack (infra/stack.py) ----------------------------------------------


@dataclass
class LocalMessageSink:
    """This module as a child of `make run`'s supervisor."""

    state_dir: Path
    smtp_port: int
    sms_port: int
    token_file: Path
    host: str = HOST
    proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def sms_url(self) -> str:
        return f"http://{self.host}:{self.sms_port}{SMS_PATH}"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "infra.message_sink", "--state-dir", str(self.state_dir),
                "--smtp-port", str(self.smtp_port), "--sms-port", str(self.sms_port),
                "--token-file", str(self.token_file)]

    def start(self, log_path: Path, cwd: Path) -> subprocess.Popen:
        from infra.supervisor import spawn

        self.proc = spawn(self.argv(), log_path, cwd=cwd)
        return self.proc

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until /healthz answers 200: the HTTP server binds after the SMTP one listens."""
        # No proxy: an http_proxy in the environment must not see local probes.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the message sink exited with code {self.proc.returncode}")
            try:
                with opener.open(f"http://{self.host}:{self.sms_port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                exc.close()
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(getattr(exc, "reason", exc))
            time.sleep(0.1)
        raise RuntimeError(f"the message sink did not answer on {self.host}:{self.sms_port} "
                           f"within {timeout:g} s: {last}")


if __name__ == "__main__":
    sys.exit(main())
