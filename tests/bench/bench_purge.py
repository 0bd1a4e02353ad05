"""Throughput of the retention purge (issue 13 part 3) on 1,000,000 intake reports.

    .venv/bin/python tests/bench/bench_purge.py [--rows 1000000] [--batch 1000] [--workers 1]

Not a test (pytest does not collect bench_*.py). It starts its own PostgreSQL in a temporary
folder (infra.postgres.running_postgres), applies intake's migrations as the intake role,
and fills intake.reports with one INSERT ... SELECT generate_series: patients as the kiosk
sends them (MRN, names, birth date, phone, email), clinical answers of a real report's size;
40% self care, 30% referral completed or cancelled, 30% referral booked (open, never due);
closed cases closed 0-364 days ago, evenly, so with the default 30 days about 92% of the
closed ones are due. Then it times, with the service's own code:
- `clinic purge --dry-run`'s query (store.identity_due),
- the purge (services.common.purge.purge_now, the workers' code: batches claimed with FOR
  UPDATE SKIP LOCKED, the HMAC computed in Python, one UPDATE ... FROM unnest per batch),
  by `--workers` purgers at once (threads, one connection each),
- a second purge, which finds nothing to do.
and checks that every due row, and no other, was pseudonymised.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from infra.postgres import running_postgres  # noqa: E402
from services.common import settings as settings_module  # noqa: E402
from services.common.db import apply_migrations  # noqa: E402
from services.common.purge import purge_now  # noqa: E402
from services.common.retention import RetentionPolicy  # noqa: E402
from services.intake import store  # noqa: E402

GENERATE = """
INSERT INTO intake.reports (report_id, kiosk_id, idempotency_key, body_hash, patient, clinical, submitted_at,
                            care_level, advice, decided_at, referral, referral_sequence, updated_at, closed_at)
SELECT gen_random_uuid(), %(kiosk)s, 'key-' || i, md5(i::text),
       jsonb_build_object('mrn', 'MRN-' || lpad(i::text, 7, '0'), 'given_name', 'Given' || (i %% 997),
                          'family_name', 'Family' || (i %% 991), 'birth_date', (date '1950-01-01' + (i %% 20000))::text,
                          'phone', '+1555' || lpad((i %% 10000000)::text, 7, '0'),
                          'email', 'p' || i || '@example.org', 'contact_consent', '["sms"]'::jsonb),
       '{"activity": {"sport": "running", "high_impact": true},
         "pain": {"locations": ["groin", "outer_hip"], "side": "left", "severity": 6, "onset": "gradual",
                  "started_on": "2026-01-02", "direct_trauma": false},
         "function": {"joint_locking": false, "instability": null, "persistent_dysfunction": false},
         "home_care": {"measures": ["rest", "ice"], "days": 14, "improving": "no"}}'::jsonb,
       now() - (i %% 365 + 2) * interval '1 day',
       CASE WHEN i %% 10 < 4 THEN 'self_care' ELSE 'specialist' END,
       '["Rest from running", "Come back if it gets worse"]'::jsonb,
       now() - (i %% 365 + 1) * interval '1 day',
       CASE WHEN i %% 10 < 4 THEN NULL
            ELSE jsonb_build_object('referral_id', gen_random_uuid(), 'priority', 'routine',
                                    'status', CASE WHEN i %% 10 < 7 THEN (ARRAY['completed', 'cancelled'])[i %% 2 + 1]
                                                   ELSE 'booked' END,
                                    'appointment', NULL) END,
       CASE WHEN i %% 10 < 4 THEN NULL ELSE 3 END,
       now() - (i %% 365) * interval '1 day',
       CASE WHEN i %% 10 < 7 THEN now() - (i %% 365) * interval '1 day' END
FROM generate_series(1, %(rows)s) AS i
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="CLINIC_RETENTION_BATCH_SIZE")
    parser.add_argument("--workers", type=int, default=1, help="purgers at once")
    args = parser.parse_args()

    with running_postgres() as pg:
        env = {"CLINIC_STATE_DIR": str(pg.state_dir), "CLINIC_PG_PORT": str(pg.port),
               "CLINIC_DATABASE_URL": pg.role_url("intake"), "CLINIC_SECRET_KEY": "bench-secret"}
        settings = replace(settings_module.load("intake", env=env), retention_batch_size=args.batch)
        policy = RetentionPolicy.from_settings(settings)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            apply_migrations(conn, "intake", "services.intake")
            kiosk = conn.execute("INSERT INTO intake.kiosks (name, key_hash) VALUES ('bench', 'x')"
                                 " RETURNING kiosk_id").fetchone()[0]
            started = time.perf_counter()
            conn.execute(GENERATE, {"kiosk": kiosk, "rows": args.rows})
            conn.execute("VACUUM ANALYZE intake.reports")
            print(f"generated {args.rows:,} reports in {time.perf_counter() - started:.1f} s"
                  f" (table {conn.execute('SELECT pg_size_pretty(pg_total_relation_size(%s))', ('intake.reports',)).fetchone()[0]})")
            closed = conn.execute("SELECT count(*) FROM intake.reports WHERE closed_at IS NOT NULL").fetchone()[0]

            started = time.perf_counter()
            due = store.identity_due(conn, policy)
            print(f"dry run (count + oldest): {time.perf_counter() - started:.3f} s: {due.due:,} due of {closed:,}"
                  f" closed, oldest closed {due.oldest_closed_at:%Y-%m-%d}")

        results, errors = [], []

        def purger():
            try:
                with psycopg.connect(settings.database_url) as connection:
                    results.append(purge_now(connection, settings, store.pseudonymise_batch, table="intake.reports"))
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=purger) for _ in range(args.workers)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert not errors, errors
        done = sum(r.pseudonymised for r in results)
        print(f"purge, {args.workers} purger(s), batch {args.batch}: {done:,} rows in {elapsed:.1f} s ="
              f" {done / elapsed:,.0f} rows/s ({sum(r.batches for r in results)} batches;"
              f" per purger {[r.pseudonymised for r in results]})")

        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            started = time.perf_counter()
            again = purge_now(conn, settings, store.pseudonymise_batch, table="intake.reports")
            print(f"second purge: {again.pseudonymised} rows in {time.perf_counter() - started:.3f} s")
            left, wrong, named = conn.execute(
                "SELECT count(*) FILTER (WHERE pseudonymised_at IS NULL AND closed_at <= now() - interval '30 days'),"
                " count(*) FILTER (WHERE pseudonymised_at IS NOT NULL AND (closed_at IS NULL"
                "                  OR closed_at > now() - interval '30 days')),"
                " count(*) FILTER (WHERE pseudonymised_at IS NOT NULL AND patient ? 'given_name')"
                " FROM intake.reports").fetchone()
            assert done == due.due and (left, wrong, named) == (0, 0, 0), (done, due.due, left, wrong, named)
            print(f"checked: every due row pseudonymised once, no other ({left} left, {wrong} wrong, {named} named)")


if __name__ == "__main__":
    main()
