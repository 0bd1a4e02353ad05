"""A socket kafka-python could not connect is closed, not left to the garbage collector.

kafka-python 3.0.12 (kafka/net/inet.py, `KafkaNetSocket.sock_connect`) raises when a broker
refuses or does not answer, but leaves the half-made socket open; the exception's traceback
keeps it in a reference cycle, so its file descriptor lives until a full garbage collection
(a ResourceWarning then). A worker retrying a dead broker every 2 s gathers descriptors that way,
and the test session ends as an error wherever that collection happens to run. Until the library
closes it itself, the method is wrapped so the socket is closed before the error goes on.
"""
from __future__ import annotations

from kafka.net.inet import KafkaNetSocket

_MARK = "_clinic_closes_refused_sockets"


def close_refused_sockets() -> None:
    """Wrap KafkaNetSocket.sock_connect once per process (every client and proxy kind uses it)."""
    original = KafkaNetSocket.sock_connect
    if getattr(original, _MARK, False):
        return

    async def sock_connect(self, net, sock, sockaddr, timeout_at=None):
        try:
            return await original(self, net, sock, sockaddr, timeout_at=timeout_at)
        except BaseException:
            sock.close()
            raise

    setattr(sock_connect, _MARK, True)
    sock_connect.__wrapped__ = original
    KafkaNetSocket.sock_connect = sock_connect
