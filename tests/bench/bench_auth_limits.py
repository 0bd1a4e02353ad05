"""Measures the failed-authentication limiter and the cost it adds (not a test; numbers for
docs/measurements.md):

1. POST /v1/reports p50, sequential on one keep-alive connection, against a real gunicorn
   intake (services/common/gunicorn_conf.py: 2 processes x 4 threads) built from a BEFORE
   tree (a git worktree of the commit before the change) and from this tree, alternately,
   on one PostgreSQL, in one run.
2. ~300 bad bearer tokens/s for 10 s from one client address against this tree's intake
   with the default limits: how many 401 and 429, and their latencies.

    .venv/bin/python -m tests.bench.bench_auth_limits --before /tmp/before-wt [--posts 400 --rounds 3]

Starts its own PostgreSQL (infra/postgres.py) in a temporary folder; Kafka is not needed by
the API (the outbox holds the events). The kiosk quota is raised for part 1 only (the
sequential posts would pass 120/hour; the quota's UPSERT costs the same whatever the limit).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

from tests.process_support import stop  # noqa: E402


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def start_intake(code_dir: Path, env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen, str]:
    from infra.postgres import free_port

    port = free_port()
    env = {**env, "CLINIC_SERVICE": "intake", "CLINIC_BIND": f"127.0.0.1:{port}", "PYTHONPATH": str(code_dir)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:services.common.gunicorn_conf",
                                 "services.intake.app:create_app()"], cwd=code_dir, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-2000:]}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("gunicorn not up")
        time.sleep(0.2)


def post_p50(url: str, key: str, n: int) -> tuple[float, float]:
    from tests.intake_support import report_body

    with requests.Session() as s:
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(20):  # warm both processes' pools
            s.post(f"{url}/v1/reports", json=report_body(), headers=headers, timeout=10)
        times = []
        for _ in range(n):
            body = report_body()
            t0 = time.perf_counter()
            r = s.post(f"{url}/v1/reports", json=body, headers=headers, timeout=10)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 202, r.text
    return statistics.median(times), pct(times, 0.95)


def flood(url: str, rate: float, seconds: float, threads: int = 8) -> dict:
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    total = int(rate * seconds)
    counter = iter(range(total))
    counter_lock = threading.Lock()

    def run():
        with requests.Session() as s:
            while True:
                with counter_lock:
                    i = next(counter, None)
                if i is None:
                    return
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                try:
                    r = s.post(f"{url}/v1/reports", json={}, timeout=10,
                               headers={"Authorization": f"Bearer kiosk_bad-{uuid.uuid4().hex}"})
                    status = r.status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    results.append((status, (time.perf_counter() - t0) * 1000))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    by = {}
    for status, ms in results:
        by.setdefault(status, []).append(ms)
    return {"sent": len(results), "elapsed_s": round(elapsed, 2), "rate": round(len(results) / elapsed, 1),
            **{f"n_{k}": len(v) for k, v in sorted(by.items())},
            **{f"p50_{k}_ms": round(statistics.median(v), 2) for k, v in sorted(by.items())},
            **{f"p95_{k}_ms": round(pct(v, 0.95), 2) for k, v in sorted(by.items())}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True, help="a worktree of the commit before the change")
    parser.add_argument("--posts", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    from infra.postgres import running_postgres
    from services.admin.credentials import kiosk_add
    from services.common import settings as settings_module

    state = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    try:
        with running_postgres(state_dir=state) as pg:
            base_env = {**{k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")},
                        "CLINIC_STATE_DIR": str(state), "CLINIC_PG_HOST": "127.0.0.1", "CLINIC_PG_PORT": str(pg.port),
                        "CLINIC_DB_NAME": "clinic", "CLINIC_ADMIN_DATABASE_URL": pg.admin_url(),
                        "CLINIC_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CLINIC_SECRET_KEY": "bench-secret"}
            settings = settings_module.load("intake", env=base_env)
            log = state / "gunicorn.log"
            # Migrate with each tree once (the later tree adds its tables), then make a kiosk.
            for code in (args.before, REPO):
                proc, _url = start_intake(code, base_env, log)
                stop(proc)
            key = kiosk_add(settings, f"bench-{uuid.uuid4().hex[:6]}")

            latency = {"before": [], "after": []}
            quota_env = {**base_env, "CLINIC_KIOSK_REPORTS_PER_HOUR": "1000000"}
            for _ in range(args.rounds):
                for label, code in (("before", args.before), ("after", REPO)):
                    proc, url = start_intake(code, quota_env, log)
                    try:
                        latency[label].append(post_p50(url, key, args.posts))
                    finally:
                        stop(proc)
            for label, rounds in latency.items():
                print(f"POST /v1/reports {label}: p50 per round (ms) "
                      f"{[round(p50, 2) for p50, _ in rounds]}, median {statistics.median(p for p, _ in rounds):.2f};"
                      f" p95 per round {[round(p95, 2) for _, p95 in rounds]}")

            # The statement the change adds to a valid POST: the kiosk quota's UPSERT, alone.
            import psycopg

            from services.common.rate_limit import Limit, RateLimiter

            limiter, times = RateLimiter("intake"), []
            with psycopg.connect(settings.database_url, autocommit=True) as conn:
                for i in range(2000):
                    t0 = time.perf_counter()
                    limiter.hit(conn, {f"kiosk-reports:bench-{i % 10}": Limit(10**9, 3600)})
                    times.append((time.perf_counter() - t0) * 1000)
            print(f"quota UPSERT alone: p50 {statistics.median(times):.3f} ms, p95 {pct(times, 0.95):.3f} ms")

            proc, url = start_intake(REPO, base_env, log)  # default limits
            try:
                print("flood:", flood(url, args.rate, args.seconds))
                time.sleep(1)
                print("flood, the same address again (already limited):", flood(url, args.rate, 3))
            finally:
                stop(proc)
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
