"""How intake's API uses its connection pool (issue 15): one checkout per POST (key, quota and
report on one connection), and pooled connections the server has closed (pg_terminate_backend,
a restart) dropped without a round trip: a request gets its 202, or a clean 503 when the
connection dies under it, never a 500.

Each test has its own app and pool, and terminates only the backends of that pool."""
from __future__ import annotations

import threading

import psycopg
import pytest

from tests.app_support import flask_app
from tests.intake_support import error_of, new_kiosk, report_body

from services.common import db
from services.intake.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def app(intake_settings):
    with flask_app(create_app, intake_settings) as app:
        yield app


class CountingCheckouts:
    """Counts the pool's getconn() calls (pool.connection() goes through it too)."""

    def __init__(self, pool, monkeypatch):
        self.count = 0
        original = pool.getconn

        def getconn(*args, **kwargs):
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(pool, "getconn", getconn)


def fill_pool(pool) -> list[int]:
    """Open the pool's every connection and give them back idle; their backends' pids."""
    conns = [pool.getconn() for _ in range(pool.max_size)]
    pids = [c.info.backend_pid for c in conns]
    for conn in conns:
        pool.putconn(conn)
    return pids


def terminate(admin_conn, pids: list[int]) -> None:
    admin_conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
    # pg_terminate_backend only signals: wait until they are gone, so their sockets say so
    for _ in range(100):
        left = admin_conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]
        if left == 0:
            return
        threading.Event().wait(0.05)
    raise AssertionError("backends not terminated")


def test_a_post_checks_out_one_connection_for_key_quota_and_report(app, intake_settings, monkeypatch):
    kiosk = new_kiosk(intake_settings)
    client = app.test_client()
    checkouts = CountingCheckouts(app.extensions["clinic"].pool, monkeypatch)

    assert client.post("/v1/reports", json=report_body(), headers=kiosk.headers).status_code == 202
    assert checkouts.count == 1

    # A key that matches nothing: the lookup and the failure's count share the one checkout too.
    assert client.post("/v1/reports", json=report_body(),
                       headers={"Authorization": "Bearer kiosk_nothing"}).status_code == 401
    assert checkouts.count == 2
    pool_stats = app.extensions["clinic"].pool.get_stats()
    assert pool_stats["pool_available"] == pool_stats["pool_size"], "a request kept its connection"


def test_the_request_connection_goes_back_to_the_pool_as_the_pool_gave_it(app, intake_settings):
    kiosk = new_kiosk(intake_settings)
    pool = app.extensions["clinic"].pool
    client = app.test_client()
    for body in (report_body(), {"patient": {}}):  # a 202, then a 422 after the quota's statement
        client.post("/v1/reports", json=body, headers=kiosk.headers)
        conns = [pool.getconn() for _ in range(pool.get_stats()["pool_size"])]
        try:
            assert all(not c.autocommit and c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                       for c in conns)
        finally:
            for conn in conns:
                pool.putconn(conn)


def test_connections_terminated_while_idle_are_dropped_and_the_post_is_accepted(app, intake_settings, admin_conn):
    kiosk = new_kiosk(intake_settings)
    pool = app.extensions["clinic"].pool
    client = app.test_client()
    terminate(admin_conn, fill_pool(pool))

    response = client.post("/v1/reports", json=report_body(), headers=kiosk.headers)

    assert response.status_code == 202, response.get_json()
    assert client.get(f"/v1/reports/{response.get_json()['report_id']}", headers=kiosk.headers).status_code == 200


def test_a_connection_that_dies_unnoticed_is_a_503_then_replaced(app, intake_settings, admin_conn, monkeypatch):
    """The race the socket check cannot see (the server ends the connection after checkout):
    the statement fails, the answer is a 503 in the one error shape, and the pool drops it."""
    kiosk = new_kiosk(intake_settings)
    pool = app.extensions["clinic"].pool
    client = app.test_client()
    pids = fill_pool(pool)
    monkeypatch.setattr(db, "closed_by_server", lambda conn: False)
    terminate(admin_conn, pids)

    statuses = []
    for _ in range(len(pids) + 1):
        response = client.post("/v1/reports", json=report_body(), headers=kiosk.headers)
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert error_of(response)["code"] == "database_unavailable"
    assert statuses[0] == 503 and statuses[-1] == 202, statuses
    assert set(statuses) == {202, 503}


def test_posts_while_backends_are_terminated_get_202_or_503_never_500(app, intake_settings, admin_conn,
                                                                    monkeypatch):
    pool = app.extensions["clinic"].pool
    pids: set[int] = set()  # this pool's backends only: other tests' apps share the database
    original = pool.getconn

    def getconn(*args, **kwargs):
        conn = original(*args, **kwargs)
        pids.add(conn.info.backend_pid)
        return conn

    monkeypatch.setattr(pool, "getconn", getconn)
    kiosks = [new_kiosk(intake_settings) for _ in range(pool.max_size)]
    statuses: list[int] = []
    stop = threading.Event()

    def kiosk_posting(kiosk) -> None:
        client = app.test_client()
        while not stop.is_set():
            statuses.append(client.post("/v1/reports", json=report_body(), headers=kiosk.headers).status_code)

    threads = [threading.Thread(target=kiosk_posting, args=(k,)) for k in kiosks]
    for thread in threads:
        thread.start()
    try:
        for _ in range(5):
            stop.wait(0.3)
            admin_conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(pids),))
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert statuses and set(statuses) <= {202, 503}, sorted(set(statuses))
    assert app.test_client().post("/v1/reports", json=report_body(), headers=kiosks[0].headers).status_code == 202
