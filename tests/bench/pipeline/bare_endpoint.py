"""The ceiling of measures 1 and 4: a bare Flask app under gunicorn (2 processes x 4
threads, gthread, keep-alive 5 s: the intake API's settings) with a psycopg_pool, doing
intake's durable work and nothing else: parse the JSON body, INSERT the report, INSERT an
outbox row, commit. No authentication, validation, idempotency check, NOTIFY, metrics or
logging: what is left when all of intake's own code is taken away.

Run by gunicorn as 'tests.bench.pipeline.bare_endpoint:create_app()' with
BENCH_BARE_DATABASE_URL set; running_bare_endpoint() starts it on a free port.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.process_support import stop

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS bench_bare;
CREATE TABLE IF NOT EXISTS bench_bare.reports (
    report_id    uuid PRIMARY KEY,
    body_hash    text NOT NULL,
    patient      jsonb NOT NULL,
    clinical     jsonb NOT NULL,
    submitted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bench_bare.outbox (
    id         bigserial PRIMARY KEY,
    event_id   uuid NOT NULL UNIQUE,
    topic      text NOT NULL,
    key        text NOT NULL,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
"""


def create_app():
    from flask import Flask, request
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool

    app = Flask("bench_bare")
    # One connection per request thread, as intake's pool (services/common/db.py).
    pool = ConnectionPool(os.environ["BENCH_BARE_DATABASE_URL"], min_size=4, max_size=4, open=True)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.post("/v1/reports")
    def post_report():
        raw = request.get_data()
        body = json.loads(raw)
        report_id = str(uuid.uuid4())
        clinical = {k: v for k, v in body.items() if k != "patient"}
        with pool.connection() as conn, conn.transaction():
            conn.execute("INSERT INTO bench_bare.reports (report_id, body_hash, patient, clinical)"
                         " VALUES (%s, %s, %s, %s)",
                         (report_id, hashlib.sha256(raw).hexdigest(), Jsonb(body["patient"]), Jsonb(clinical)))
            conn.execute("INSERT INTO bench_bare.outbox (event_id, topic, key, payload) VALUES (%s, %s, %s, %s)",
                         (str(uuid.uuid4()), "bench.reports", report_id, Jsonb({"id": report_id, "data": body})))
        return {"report_id": report_id}, 202

    return app


def prepare_schema(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the bare endpoint exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the bare endpoint was not up after {timeout:.0f} s; see {log}")


@contextlib.contextmanager
def running_bare_endpoint(admin_url: str, log_dir: Path) -> Iterator[str]:
    """The bare endpoint under gunicorn on a free port; yields its base URL."""
    from infra.postgres import free_port
    from tests.live_stack import REPO

    prepare_schema(admin_url)
    port = free_port()
    log = log_dir / "bench-bare-endpoint.log"
    command = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "2", "--threads", "4",
               "--keep-alive", "5", "--no-control-socket", "--bind", f"127.0.0.1:{port}",
               "tests.bench.pipeline.bare_endpoint:create_app()"]
    env = {**os.environ, "BENCH_BARE_DATABASE_URL": admin_url}
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        stop(proc)
