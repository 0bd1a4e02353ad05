"""A kafka-python client that finds nothing listening leaves no open socket behind
(services/common/kafka_sockets.py): none is found by a full garbage collection afterwards."""
from __future__ import annotations

import gc
import logging
import socket
import warnings

import pytest

from kafka import KafkaAdminClient
from kafka.errors import KafkaTimeoutError
from kafka.net.inet import KafkaNetSocket

from services.common.kafka_sockets import close_refused_sockets


def _refused_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        return taken.getsockname()[1]  # closed on leaving: a connection there is refused


def _bootstrap_refused() -> str:
    """The client's error; nothing of it (traceback, frames, sockets) is kept past the return."""
    try:
        KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{_refused_port()}", bootstrap_timeout_ms=1500,
                         reconnect_backoff_ms=50, client_id="refused-socket-test")
    except KafkaTimeoutError as exc:
        return str(exc)
    return "connected"


def _unclosed_after_refusal() -> list[str]:
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert "Unable to bootstrap" in _bootstrap_refused()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.fixture(autouse=True)
def quiet_kafka_logs():
    """The client logs each refusal with its exception; the log records pytest keeps would keep
    the exception's frames (and their sockets) alive past the collection this test makes."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    yield
    kafka_log.setLevel(level)


def test_a_refused_connection_leaves_no_socket_to_the_garbage_collector():
    close_refused_sockets()
    assert _unclosed_after_refusal() == []


def test_the_library_alone_leaks_it_so_the_fix_is_still_needed(monkeypatch):
    """When kafka-python closes the socket itself, this fails: kafka_sockets.py can go."""
    close_refused_sockets()
    monkeypatch.setattr(KafkaNetSocket, "sock_connect", KafkaNetSocket.sock_connect.__wrapped__)
    leaks = _unclosed_after_refusal()
    assert leaks and all("unclosed <socket.socket" in text for text in leaks), leaks


def test_installing_twice_wraps_once():
    close_refused_sockets()
    wrapped = KafkaNetSocket.sock_connect
    close_refused_sockets()
    assert KafkaNetSocket.sock_connect is wrapped
