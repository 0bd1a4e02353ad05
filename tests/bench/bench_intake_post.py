"""Throughput of `POST /v1/reports` on the intake API, beside its ceiling measured in the same run.

    .venv/bin/python tests/bench/bench_intake_post.py [--clients 16] [--reports 2000] [--rounds 1]

Not a test (pytest does not collect bench_*.py). It starts its own PostgreSQL in a temporary
folder (infra.postgres.running_postgres) and serves, each in turn on that one database:

- **intake**: the real intake API under gunicorn with services/common/gunicorn_conf.py's own
  workers and threads (tests/gunicorn_support.py), a kiosk key per client, the kiosk quota raised
  above what the run sends (its UPSERT costs the same whatever the limit);
- **ceiling**: a bare Flask app under gunicorn (gthread, the same workers x threads) with a
  psycopg_pool pool doing the same durable work per request: read the JSON body, INSERT the
  report, INSERT an outbox row, commit, answer 202 (`bare_app` below; its tables live in a
  schema of their own, `bench_bare`).

Each is driven by `clients` threads, each on its own keep-alive connection (http.client), that
send `reports` reports in all after a short warm-up; every answer must be a 202. Kafka is not
needed: the API only writes the outbox. The machine's other load slows both alike, which is why
the ratio, not the absolute figures, is what to compare between runs.

Importable (`make bench` calls it):

    from tests.bench.bench_intake_post import measure
    rows = measure(clients=16, reports=2000, rounds=1)

`measure` returns one dict per target, ceiling first, with the median over rounds:
``{"target": "ceiling" | "intake", "clients": int, "reports": int, "rounds": int,
"accepted_per_s": float, "p50_ms": float, "p99_ms": float, "cpu_ms": float, "db_cpu_ms": float,
"ratio_to_ceiling": float}``
(`cpu_ms`: CPU time, user + system, per accepted report over the timed part, summed over
the target's gunicorn processes, read from /proc; `db_cpu_ms` the same over PostgreSQL's
processes, the target being its only client then; less sensitive to the machine's other load
than accepted/s, though a busy machine inflates it too: caches, frequency, context switches).
(the ceiling's ratio is 1.0; `ratio_to_ceiling` is the median of each round's ratio, the two
targets run back to back, in turns first; `ratios` lists them). `print_table(rows)` prints them
as the script does.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script: `python tests/bench/bench_intake_post.py`
    sys.path.insert(0, str(REPO))

from tests.process_support import stop  # noqa: E402

WARM_UP_PER_CLIENT = 10
BARE_SCHEMA = "bench_bare"


# -- the ceiling: the same durable work with nothing else ------------------------------------
def bare_app():
    """The bare endpoint gunicorn serves (`tests.bench.bench_intake_post:bare_app()`), with the
    database URL in BENCH_BARE_DATABASE_URL and its pool as large as the worker's threads."""
    from flask import Flask, request
    from psycopg.types.json import Jsonb
    from psycopg_pool import ConnectionPool

    size = int(os.environ["BENCH_BARE_POOL_SIZE"])
    pool = ConnectionPool(os.environ["BENCH_BARE_DATABASE_URL"], min_size=size, max_size=size, open=True)
    app = Flask(__name__)

    @app.post("/v1/reports")
    def submit():
        body = request.get_json()
        report_id = str(uuid.uuid4())
        event = {"id": str(uuid.uuid4()), "type": "clinic.report.submitted", "subject": report_id, "data": body}
        with pool.connection() as conn:  # commits on leaving
            conn.execute(f"INSERT INTO {BARE_SCHEMA}.reports (report_id, body) VALUES (%s, %s)",
                         (report_id, Jsonb(body)))
            conn.execute(f"INSERT INTO {BARE_SCHEMA}.outbox (event_id, key, payload) VALUES (%s, %s, %s)",
                         (event["id"], report_id, Jsonb(event)))
        return {"report_id": report_id, "status": "received"}, 202
    return app


def _create_bare_schema(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {BARE_SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {BARE_SCHEMA}")
        conn.execute(f"CREATE TABLE {BARE_SCHEMA}.reports (report_id uuid PRIMARY KEY, body jsonb NOT NULL,"
                     " submitted_at timestamptz NOT NULL DEFAULT now())")
        conn.execute(f"CREATE TABLE {BARE_SCHEMA}.outbox (id bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE,"
                     " key text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
                     " sent_at timestamptz)")


@contextlib.contextmanager
def _running_bare(admin_url: str, workers: int, threads: int, log_path: Path) -> Iterator[str]:
    from infra.postgres import free_port

    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
           "BENCH_BARE_DATABASE_URL": admin_url, "BENCH_BARE_POOL_SIZE": str(threads)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", str(workers),
             "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--keep-alive", "5",
             "--config", "/dev/null", "tests.bench.bench_intake_post:bare_app()"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_listening(proc, port, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _wait_listening(proc: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn not up") from None
            time.sleep(0.2)


# -- the load ---------------------------------------------------------------------------------
def _bodies(n: int) -> list[bytes]:
    from tests.intake_support import report_body

    return [json.dumps(report_body()).encode() for _ in range(n)]


def _server_pids(port: str) -> list[int]:
    """The gunicorn processes (arbiter and workers) serving 127.0.0.1:port: the port is in their
    command line (the bare endpoint's --bind) or their environment (CLINIC_BIND)."""
    needle = f"127.0.0.1:{port}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"gunicorn" in cmdline and (needle in cmdline or needle in (entry / "environ").read_bytes()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_pids(data_dir: Path | None) -> list[int]:
    """The postmaster whose data folder this is and its children (backends, WAL writer, ...)."""
    if data_dir is None:
        return []
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == postmaster:
                    pids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def drive(url: str, keys: list[str], reports: int, pg_data_dir: Path | None = None) -> dict:
    """len(keys) keep-alive clients (one key each) send `reports` reports in all, after a warm-up;
    accepted/s over the timed part, each request's latency, and the servers' CPU per report
    (and PostgreSQL's, all of its processes, when its data folder is given: the target is the
    only one using it then). Any answer but 202 is an error."""
    host, port = url.removeprefix("http://").split(":")
    pids = _server_pids(port)
    clients = len(keys)
    per_client = [reports // clients + (1 if i < reports % clients else 0) for i in range(clients)]
    bodies = [_bodies(WARM_UP_PER_CLIENT + n) for n in per_client]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[str] = []
    ready = threading.Barrier(clients + 1)
    go = threading.Event()

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        headers = {"Authorization": f"Bearer {keys[i]}", "Content-Type": "application/json"}

        def post(body: bytes) -> bool:
            conn.request("POST", "/v1/reports", body=body, headers=headers)
            response = conn.getresponse()
            text = response.read()
            if response.status != 202:
                failures.append(f"{response.status} {text[:200]!r}")
            return response.status == 202

        try:
            if not all(post(body) for body in bodies[i][:WARM_UP_PER_CLIENT]):
                ready.abort()
                return
            ready.wait()
            go.wait()
            for body in bodies[i][WARM_UP_PER_CLIENT:]:
                t0 = time.perf_counter()
                if not post(body):
                    return
                latencies[i].append((time.perf_counter() - t0) * 1000)
        except threading.BrokenBarrierError:
            pass  # another client failed its warm-up: reported below
        except Exception as exc:  # noqa: BLE001 - reported, and the run fails below
            failures.append(repr(exc))
            ready.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    db_pids = _postgres_pids(pg_data_dir)  # after the warm-up: the pools' backends are up
    cpu_before, db_cpu_before = _cpu_seconds(pids), _cpu_seconds(db_pids)
    start = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    cpu, db_cpu = _cpu_seconds(pids) - cpu_before, _cpu_seconds(db_pids) - db_cpu_before
    if failures:
        raise RuntimeError(f"{len(failures)} clients failed, first: {failures[0]}")
    times = sorted(ms for per in latencies for ms in per)
    return {"accepted_per_s": len(times) / elapsed, "p50_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))],
            "cpu_ms": cpu * 1000 / len(times) if pids else float("nan"),
            "db_cpu_ms": db_cpu * 1000 / len(times) if db_pids else float("nan")}


# -- the run ----------------------------------------------------------------------------------
def measure(*, clients: int = 16, reports: int = 2000, rounds: int = 1, workers: int | None = None,
            threads: int | None = None) -> list[dict]:
    """Start PostgreSQL, then for each round drive the ceiling and the intake API in turn with
    `clients` keep-alive clients sending `reports` reports; one dict per target (see the module
    docstring), the median of the rounds. `workers`/`threads`: gunicorn's sizing for both
    (default: services/common/gunicorn_conf.py's, as `make run` serves the API)."""
    from infra.postgres import running_postgres
    from services.admin.credentials import kiosk_add
    from services.common import gunicorn_conf
    from services.common import settings as settings_module
    from tests.gunicorn_support import running_gunicorn

    sized = workers is not None or threads is not None
    workers, threads = workers or gunicorn_conf.workers, threads or gunicorn_conf.threads
    sizing = {"workers": workers, "threads": threads} if sized else {"workers": None}
    state = Path(tempfile.mkdtemp(prefix="bench-intake-post-"))
    os.chmod(state, 0o711)  # a non-root server user must reach its data folder
    results: dict[str, list[dict]] = {"ceiling": [], "intake": []}
    try:
        with running_postgres(state_dir=state) as pg:
            env = {"CLINIC_STATE_DIR": str(state), "CLINIC_PG_HOST": "127.0.0.1", "CLINIC_PG_PORT": str(pg.port),
                   "CLINIC_DB_NAME": "clinic", "CLINIC_ADMIN_DATABASE_URL": pg.admin_url(),
                   "CLINIC_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CLINIC_SECRET_KEY": "bench-secret",
                   "CLINIC_KIOSK_REPORTS_PER_HOUR": str(10 * (reports + clients * WARM_UP_PER_CLIENT) * rounds)}
            settings = settings_module.load("intake", env=env)
            _create_bare_schema(pg.admin_url())
            with running_gunicorn("intake", env, state / "intake.log", workers=None):
                pass  # the first start applies intake's migrations, so the kiosks can be made
            keys = [kiosk_add(settings, f"bench-{uuid.uuid4().hex[:8]}") for _ in range(clients)]
            for round_ in range(rounds):
                # Every other round the intake API goes first: the machine's load drifts, and
                # whichever ran second would otherwise always meet the later load.
                order = ("ceiling", "intake") if round_ % 2 == 0 else ("intake", "ceiling")
                for target in order:
                    if target == "ceiling":
                        with _running_bare(pg.admin_url(), workers, threads, state / "bare.log") as url:
                            results["ceiling"].append(drive(url, keys, reports, pg.data_dir))
                    else:
                        with running_gunicorn("intake", env, state / "intake.log", **sizing) as url:
                            results["intake"].append(drive(url, keys, reports, pg.data_dir))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    rows = []
    for target, runs in results.items():
        rows.append({"target": target, "clients": clients, "reports": reports, "rounds": rounds,
                     "workers": workers, "threads": threads,
                     **{k: round(statistics.median(r[k] for r in runs), 1)
                        for k in ("accepted_per_s", "p50_ms", "p99_ms")},
                     **{k: round(statistics.median(r[k] for r in runs), 3) for k in ("cpu_ms", "db_cpu_ms")}})
    # The ratio of each round (the two targets side by side, under the same load), their median.
    for row in rows:
        row["ratio_to_ceiling"] = round(statistics.median(
            run["accepted_per_s"] / ceiling["accepted_per_s"]
            for run, ceiling in zip(results[row["target"]], results["ceiling"])), 2)
        row["ratios"] = [round(run["accepted_per_s"] / ceiling["accepted_per_s"], 2)
                         for run, ceiling in zip(results[row["target"]], results["ceiling"])]
    return rows


def print_table(rows: list[dict]) -> None:
    first = rows[0]
    print(f"POST /v1/reports: {first['clients']} keep-alive clients, {first['reports']} reports, "
          f"{first['rounds']} round(s), gunicorn {first['workers']} workers x {first['threads']} threads")
    for row in rows:
        print(f"  {row['target']:8} {row['accepted_per_s']:8.1f} accepted/s  p50 {row['p50_ms']:6.1f} ms"
              f"  p99 {row['p99_ms']:6.1f} ms  cpu {row['cpu_ms']:4.2f} + db {row['db_cpu_ms']:4.2f} ms/report"
              f"  ratio {row['ratio_to_ceiling']:.2f}"
              + (f" (rounds: {', '.join(f'{r:.2f}' for r in row['ratios'])})" if len(row["ratios"]) > 1 else ""))
    print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, help="gunicorn workers of both (default: gunicorn_conf.py's)")
    parser.add_argument("--threads", type=int, help="threads per worker of both (default: gunicorn_conf.py's)")
    args = parser.parse_args()
    print_table(measure(clients=args.clients, reports=args.reports, rounds=args.rounds, workers=args.workers,
                        threads=args.threads))


if __name__ == "__main__":
    main()
