"""The intake API served as `make run` serves it (gunicorn, gthread workers, services/common/gunicorn_conf.py),
over real sockets: oversized bodies are refused before they are read whole, and concurrent
duplicates of one Idempotency-Key make one report."""
from __future__ import annotations

import json
import socket
import threading
import uuid

import pytest
import requests

from tests.gunicorn_support import running_gunicorn
from tests.intake_support import error_of, kiosk_report_ids, report_body

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


class Server:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"


@pytest.fixture(scope="module")
def server(stack_env, intake_settings, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("gunicorn") / "intake.log"
    with running_gunicorn("intake", stack_env, log_path, workers=None) as url:
        host, _, port = url.removeprefix("http://").rpartition(":")
        yield Server(host, int(port))


# -- raw HTTP/1.1, so that the test decides how much of the body is ever sent -----------------
def request_head(server: Server, key: str, framing: str) -> bytes:
    return (f"POST /v1/reports HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n{framing}\r\n").encode()


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], dict]:
    """Status, headers and JSON body of one response (Content-Length framed, as Flask answers)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in
               (line.split(":", 1) for line in header_lines)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the response body"
        rest += chunk
    return int(status_line.split()[1]), headers, json.loads(rest[:length])


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    # A server that waited for the rest of the body would leave recv() to time out here.
    sock.settimeout(10)
    return sock


def test_a_declared_oversize_body_is_refused_before_it_is_sent(server, kiosk, intake_conn):
    declared = 10 * 1024 * 1024
    with connect(server) as sock:
        sock.sendall(request_head(server, kiosk.key, f"Content-Length: {declared}\r\n"))
        sock.sendall(b'{"patient": ' + b" " * 1024)  # a thousandth of it, and no more

        status, headers, body = read_response(sock)

    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert headers["content-type"].startswith("application/json")
    assert kiosk_report_ids(intake_conn, kiosk) == []


def test_a_chunked_body_is_refused_once_it_passes_the_limit(server, kiosk, intake_conn):
    with connect(server) as sock:
        sock.sendall(request_head(server, kiosk.key, "Transfer-Encoding: chunked\r\n"))
        chunk = b" " * 8192
        sent = 0
        while sent <= LIMIT + 2 * len(chunk):  # past the limit, then stop without the last chunk
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)

        status, _headers, body = read_response(sock)

    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert kiosk_report_ids(intake_conn, kiosk) == []


def padded_report(size: int) -> bytes:
    """A valid report, padded with JSON whitespace to exactly `size` bytes."""
    payload = json.dumps(report_body()).encode()
    return payload + b" " * (size - len(payload))


def send_chunked(server: Server, key: str, payload: bytes, piece_size: int = 4096):
    with connect(server) as sock:
        sock.sendall(request_head(server, key, "Transfer-Encoding: chunked\r\n"))
        for start in range(0, len(payload), piece_size):
            piece = payload[start:start + piece_size]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
        return read_response(sock)


@pytest.mark.parametrize("size, status", [(1000, 202), (LIMIT, 202), (LIMIT + 1, 413)])
def test_the_limit_is_exact_for_a_complete_chunked_body(server, kiosk, intake_conn, size, status):
    answered, _headers, body = send_chunked(server, kiosk.key, padded_report(size))
    assert answered == status, body
    assert kiosk_report_ids(intake_conn, kiosk) == ([body["report_id"]] if status == 202 else [])


@pytest.mark.parametrize("size, status", [(LIMIT, 202), (LIMIT + 1, 413)])
def test_the_limit_is_exact_with_a_content_length(server, kiosk, intake_conn, size, status):
    response = requests.post(f"{server.url}/v1/reports", data=padded_report(size), timeout=10,
                             headers={"Authorization": f"Bearer {kiosk.key}", "Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert len(kiosk_report_ids(intake_conn, kiosk)) == (1 if status == 202 else 0)


def test_an_ordinary_client_sending_too_much_gets_the_413(server, kiosk, intake_conn):
    body = report_body(patient__family_name="x" * (LIMIT + 1))
    response = requests.post(f"{server.url}/v1/reports", json=body, headers={"Authorization": f"Bearer {kiosk.key}"},
                             timeout=10)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert kiosk_report_ids(intake_conn, kiosk) == []


# -- concurrent duplicates ------------------------------------------------------------------
def test_concurrent_duplicates_make_one_report(server, kiosk, intake_conn):
    threads_count = 20
    for round_ in range(3):
        idempotency_key = f"burst-{round_}-{uuid.uuid4().hex[:8]}"
        body = report_body()
        start = threading.Barrier(threads_count)
        results: list = [None] * threads_count

        def send(i: int) -> None:
            with requests.Session() as session:  # a connection of its own
                start.wait()
                try:
                    results[i] = session.post(
                        f"{server.url}/v1/reports", json=body, timeout=30,
                        headers={"Authorization": f"Bearer {kiosk.key}", "Idempotency-Key": idempotency_key})
                except requests.RequestException as exc:  # reported below, not lost in a thread
                    results[i] = exc

        threads = [threading.Thread(target=send, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        statuses = [getattr(r, "status_code", r) for r in results]
        assert statuses == [202] * threads_count, statuses
        report_ids = {r.json()["report_id"] for r in results}
        assert len(report_ids) == 1, report_ids
        (report_id,) = report_ids
        assert all(r.headers["Location"] == f"/v1/reports/{report_id}" for r in results)
        rows = intake_conn.execute(
            "SELECT r.report_id::text FROM intake.reports r JOIN intake.kiosks k USING (kiosk_id)"
            " WHERE k.name = %s AND r.idempotency_key = %s", (kiosk.name, idempotency_key)).fetchall()
        assert rows == [(report_id,)]
        events = intake_conn.execute("SELECT count(*) FROM intake.outbox WHERE key = %s", (report_id,)).fetchone()
        assert events == (1,)
    assert len(kiosk_report_ids(intake_conn, kiosk)) == 3
