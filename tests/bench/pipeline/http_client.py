"""One keep-alive HTTP/1.1 connection posting JSON: http.client rather than requests, so
that the load generator's own CPU (two cores, shared with the stack) stays small."""
from __future__ import annotations

import http.client
import json
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

# A kept-alive connection the server has closed (gunicorn's keepalive is 5 s) fails on reuse.
_STALE_CONNECTION = (http.client.RemoteDisconnected, http.client.CannotSendRequest,
                     http.client.BadStatusLine, ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True)
class Answer:
    status: int
    report_id: str | None


class KeepAliveClient:
    def __init__(self, base_url: str, bearer: str | None = None, timeout: float = 30.0):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if bearer:
            self.headers["Authorization"] = f"Bearer {bearer}"
        self.conn: http.client.HTTPConnection | None = None

    def post_report(self, path: str, body: bytes) -> Answer:
        # An Idempotency-Key makes the one retry on a stale connection safe (as kiosks do).
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                response = self.conn.getresponse()
                payload = response.read()
            except _STALE_CONNECTION:
                self.close()
                if attempt == 2:
                    raise
                continue
            report_id = None
            if response.status == 202:
                report_id = json.loads(payload).get("report_id")
            return Answer(response.status, report_id)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
