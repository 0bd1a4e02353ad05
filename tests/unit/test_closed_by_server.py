"""services/common/db.closed_by_server: the API pool's check at checkout, without a round trip.
An idle connection's socket has nothing to read unless the server has spoken or hung up."""
from __future__ import annotations

import socket
from dataclasses import dataclass

from services.common.db import closed_by_server


@dataclass
class IdleConnection:
    sock: socket.socket
    closed: bool = False

    def fileno(self) -> int:
        return self.sock.fileno()


def test_a_quiet_idle_connection_is_alive():
    ours, server = socket.socketpair()
    with ours, server:
        assert not closed_by_server(IdleConnection(ours))


def test_a_message_from_the_server_while_idle_means_it_is_ending_the_connection():
    ours, server = socket.socketpair()
    with ours, server:
        server.sendall(b"E...FATAL: terminating connection due to administrator command")
        assert closed_by_server(IdleConnection(ours))


def test_a_hung_up_server_is_seen():
    ours, server = socket.socketpair()
    with ours:
        server.close()
        assert closed_by_server(IdleConnection(ours))


def test_a_connection_psycopg_knows_closed_is_not_polled():
    ours, server = socket.socketpair()
    with server:
        ours.close()  # its fileno would be -1: the flag is enough
        assert closed_by_server(IdleConnection(ours, closed=True))
