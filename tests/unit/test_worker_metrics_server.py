"""A worker's own /metrics server (services.common.worker.serve_metrics)."""
from __future__ import annotations

import logging
import socket
import urllib.request

from services.common.worker import serve_metrics


def test_no_bind_no_server():
    assert serve_metrics(None) is None


def test_serves_the_worker_counters():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve_metrics(f"127.0.0.1:{port}")
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "# TYPE clinic_events_consumed_total counter" in text
    assert "# TYPE clinic_events_published_total counter" in text


def test_a_taken_port_costs_the_metrics_not_the_worker(caplog):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="services.common.worker"):
            assert serve_metrics(f"127.0.0.1:{port}") is None
    assert [r.getMessage() for r in caplog.records] == ["cannot serve metrics; going on without"]
