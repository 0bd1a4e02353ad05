"""Latency of the schedulers' queue (`GET /v1/referrals`) and of FHIR ServiceRequest search
pages (`GET /fhir/R4/ServiceRequest`, issue 17) on a table of 1,000,000 referrals, next to the
same requests on 1,000 referrals (the ceiling they are compared with).

    .venv/bin/python tests/bench/bench_queue.py [--rows 1000000] [--small 1000] [--requests 400]

Not a test (pytest does not collect bench_*.py). It starts its own PostgreSQL in a temporary
folder (infra.postgres.running_postgres), applies the referral migrations as the referral
role, and serves the real referral app (services.referral.app.create_app) through Flask's
test client, so each figure is one whole request: token check, query, JSON. The 1,000
referrals live in a second database of the same server, served by a second app, and the
two are timed request by request in turn, so that whatever else the machine is doing
slows both alike. Keyset pagination should make a page cost the same whatever the table's
size and the page's depth; besides each request's time, the query's own execution time
(EXPLAIN ANALYZE) is shown, and the full plans of the deep pages at 1,000,000 rows. The FHIR
searches run on the same data through the same app; for each, the buffers its SQL touches
at 1,000,000 rows and the plan's nodes (a Sort or Seq Scan would show there).

The generated data respects every constraint of the schema: one open referral per patient
(the newest 5% are open, and a patient's number repeats only every 300,000 referrals), one
referral per slot, no overlapping slots for a provider (24 providers take turns), a slot for
every booked or completed referral, and one or two linked reports for each referral, each
with the rules its decision fired. Each referral has as many history entries as its version
(the queue does not read them; a ServiceRequest's notes do).
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from infra.postgres import LocalPostgres, running_postgres  # noqa: E402
from services.common import settings as settings_module  # noqa: E402
from services.common.auth import hash_secret, new_secret  # noqa: E402
from services.common.db import apply_migrations  # noqa: E402
from services.referral import cursor, store  # noqa: E402
from services.referral.fhir import store as fhir_store  # noqa: E402
from services.referral.fhir.search import parse_search  # noqa: E402

PROVIDERS = 24              # take turns slot by slot, so that no two slots of one provider overlap
STEP_SECONDS = 95           # between two referrals' creation (1M referrals span about three years)
OPEN_SHARE = 0.05           # the newest referrals are the open ones (booked or waitlisted)
MRN_CYCLE = 300_000         # a patient comes back every 300,000 referrals: at most one open each
PAGE = 50                   # the API's default page size
WALK_PAGES = 50             # pages followed by cursor for the "deep page" case
WARM_UP = 5                 # untimed requests per case and table
DB_REPEAT = 20              # EXPLAIN ANALYZE runs per case for the database's own time

# (name, query parameters, how the cursor is made: None, "walk" or a filter for the middle row)
CASES = [
    ("first page", {}, None),
    (f"page {WALK_PAGES + 1} (cursors followed)", {}, "walk"),
    ("middle of the table (crafted cursor)", {}, store.QueueFilter()),
    ("status=waitlisted, first page", {"status": "waitlisted"}, None),
    ("status=waitlisted, middle", {"status": "waitlisted"}, store.QueueFilter(status="waitlisted")),
    ("status=open, first page", {"status": "open"}, None),
    ("priority=urgent, first page", {"priority": "urgent"}, None),
    ("priority=urgent, middle", {"priority": "urgent"}, store.QueueFilter(priority="urgent")),
    ("status=waitlisted&priority=urgent", {"status": "waitlisted", "priority": "urgent"}, None),
    ("report_id=<a random report>", "report", None),
]

FHIR_PATH = "/fhir/R4/ServiceRequest"
FHIR_WALK = f"FHIR page {WALK_PAGES + 1} (next links)"
# (name, query parameters or how they are made per table: "walk", "mrn", "updated")
FHIR_CASES = [
    ("FHIR first page", []),
    (FHIR_WALK, "walk"),
    ("FHIR status=active", [("status", "active")]),
    ("FHIR status=completed", [("status", "completed")]),
    ("FHIR priority=urgent", [("priority", "urgent")]),
    ("FHIR patient.identifier=<an MRN>", "mrn"),
    ("FHIR _lastUpdated=ge..&lt.. (a day)", "updated"),
]
# What the generated reports' decisions fired, by care level (as triage's events state them).
FIRED = {"urgent": '[{"id": "URG-SEVERE", "reason": "Severe pain (8 or more) needs prompt assessment."}]',
         "specialist": '[{"id": "SPEC-CHRONIC", "reason": "Pain for over three months."},'
                       ' {"id": "SPEC-FUNCTION", "reason": "Pain limits daily activities."}]'}


# -- data ---------------------------------------------------------------------------------
def add_providers(conn: psycopg.Connection) -> list[str]:
    return [conn.execute("INSERT INTO referral.providers (name, specialty, location)"
                         " VALUES (%s, 'pain_management', %s) RETURNING provider_id::text",
                         (f"Bench clinic {n}", f"Room {n}")).fetchone()[0] for n in range(PROVIDERS)]


def load(conn: psycopg.Connection, rows: int, providers: list[str], now: datetime) -> dict[str, float]:
    """Generate `rows` referrals (in SQL, generate_series) with their slots and reports; seconds per step."""
    timings = {}
    params = {"n": rows, "open_n": max(1, int(rows * OPEN_SHARE)), "now": now, "cycle": MRN_CYCLE,
              "step": f"{STEP_SECONDS} seconds", "providers": providers, "count": PROVIDERS,
              "fired_urgent": FIRED["urgent"], "fired_specialist": FIRED["specialist"]}

    def step(name: str, statement: str) -> None:
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(statement, params)
        timings[name] = time.perf_counter() - started

    conn.execute("SELECT setseed(0.42)")
    step("plan (scratch table)", """
        CREATE UNLOGGED TABLE referral.bench_plan AS
        SELECT *, CASE WHEN status IN ('booked', 'completed') THEN gen_random_uuid() END AS slot_id
        FROM (SELECT i, gen_random_uuid() AS referral_id,
                     'MRN-' || lpad((i %% %(cycle)s)::text, 6, '0') AS mrn,
                     CASE WHEN random() < 0.25 THEN 'urgent' ELSE 'routine' END AS priority,
                     CASE WHEN i > %(n)s - %(open_n)s
                          THEN CASE WHEN random() < 0.4 THEN 'waitlisted' ELSE 'booked' END
                          ELSE CASE WHEN random() < 0.45 THEN 'completed' ELSE 'cancelled' END END AS status,
                     %(now)s::timestamptz - (%(n)s - i) * %(step)s::interval AS created_at,
                     random() < 0.1 AS two_reports
              FROM generate_series(1, %(n)s) AS i) AS generated""")
    step("slots", """
        INSERT INTO referral.slots (slot_id, provider_id, start_at, end_at, created_at)
        SELECT slot_id, (%(providers)s::uuid[])[1 + i %% %(count)s], created_at + interval '1 day',
               created_at + interval '1 day 30 minutes', created_at
        FROM referral.bench_plan WHERE slot_id IS NOT NULL""")
    step("referrals", """
        INSERT INTO referral.referrals (referral_id, patient_mrn, patient_display_name, priority, status, slot_id,
                                        created_at, window_ends_at, version, updated_at)
        SELECT referral_id, mrn, 'Bench Patient', priority, status, slot_id, created_at,
               created_at + CASE priority WHEN 'urgent' THEN interval '2 days' ELSE interval '14 days' END,
               CASE status WHEN 'waitlisted' THEN 1 WHEN 'booked' THEN 1 ELSE 2 END + two_reports::int,
               created_at + interval '1 hour'
        FROM referral.bench_plan""")
    step("reports", """
        INSERT INTO referral.referral_reports (report_id, referral_id, position, care_level, linked_at, fired)
        SELECT gen_random_uuid(), referral_id, position,
               CASE priority WHEN 'urgent' THEN 'urgent' ELSE 'specialist' END,
               created_at + position * interval '1 hour',
               CASE priority WHEN 'urgent' THEN %(fired_urgent)s::jsonb ELSE %(fired_specialist)s::jsonb END
        FROM referral.bench_plan, LATERAL (SELECT 0 AS position UNION ALL SELECT 1 WHERE two_reports) AS linked""")
    # One entry per version: made (booked or waitlisted), a second report linked, then closed.
    step("history", """
        INSERT INTO referral.referral_history (referral_id, sequence, at, actor, action, from_status, to_status,
                                               reason, to_slot_id)
        SELECT referral_id, sequence, created_at + (sequence - 1) * interval '30 minutes', 'triage',
               CASE WHEN sequence = 1 THEN 'created' WHEN closes THEN status ELSE 'report_linked' END,
               CASE WHEN sequence > 1 THEN opened END, CASE WHEN closes THEN status ELSE opened END,
               CASE WHEN sequence = 1 THEN 'Referral made from a triage decision.'
                    WHEN closes THEN 'Closed by the clinic.' ELSE 'Another report of the patient.' END,
               CASE WHEN sequence = 1 AND opened = 'booked' THEN slot_id END
        FROM (SELECT *, CASE WHEN status = 'cancelled' THEN 'waitlisted' WHEN status = 'completed' THEN 'booked'
                             ELSE status END AS opened,
                     CASE status WHEN 'waitlisted' THEN 1 WHEN 'booked' THEN 1 ELSE 2 END + two_reports::int AS version
              FROM referral.bench_plan) AS p,
             LATERAL (SELECT s AS sequence, s > 1 AND s = version AND status IN ('completed', 'cancelled') AS closes
                      FROM generate_series(1, version) AS s) AS entries""")
    conn.execute("DROP TABLE referral.bench_plan")
    started = time.perf_counter()
    for table in ("providers", "slots", "referrals", "referral_reports", "referral_history"):
        conn.execute(f"ANALYZE referral.{table}")
    timings["ANALYZE"] = time.perf_counter() - started
    return timings


def empty(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE referral.referral_reports, referral.referral_history, referral.referrals,"
                 " referral.slots")


def describe(conn: psycopg.Connection) -> str:
    counts = conn.execute("SELECT status, priority, count(*) FROM referral.referrals GROUP BY 1, 2 ORDER BY 1, 2"
                          ).fetchall()
    slots, reports, entries = conn.execute(
        "SELECT (SELECT count(*) FROM referral.slots), (SELECT count(*) FROM referral.referral_reports),"
        " (SELECT count(*) FROM referral.referral_history)").fetchone()
    size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('referral.referrals'))").fetchone()[0]
    mix = ", ".join(f"{status}/{priority} {n:,}" for status, priority, n in counts)
    return (f"{mix}; {slots:,} slots, {reports:,} linked reports, {entries:,} history entries;"
            f" referrals table with indexes {size}")


def middle_key(conn: psycopg.Connection, filters: store.QueueFilter) -> tuple:
    """The sort key of the row halfway down the (filtered) queue: a cursor deep in the list."""
    where, params = [], []
    if filters.status:
        where.append(sql.SQL("status = %s"))
        params.append(filters.status)
    if filters.priority:
        where.append(sql.SQL("priority_rank = %s"))
        params.append(0 if filters.priority == "urgent" else 1)
    where_sql = sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL("")
    total = conn.execute(sql.SQL("SELECT count(*) FROM referral.referrals {}").format(where_sql), params).fetchone()[0]
    return tuple(conn.execute(
        sql.SQL("SELECT priority_rank, created_at, referral_id::text FROM referral.referrals {}"
                " ORDER BY priority_rank, created_at, referral_id OFFSET %s LIMIT 1").format(where_sql),
        [*params, total // 2]).fetchone())


# -- timing ---------------------------------------------------------------------------------
def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def figures(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), percentile(values, 0.95), percentile(values, 0.99)


class Client:
    def __init__(self, app, token: str):
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, params: dict | list, path: str = "/v1/referrals") -> tuple[float, dict]:
        started = time.perf_counter()
        response = self.client.get(path, query_string=params, headers=self.headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET {path} {params} -> {response.status_code} {response.get_data(as_text=True)}")
        return elapsed, response.get_json()

    def fhir(self, params: list) -> tuple[float, dict]:
        return self.get(params, FHIR_PATH)


def page_items(body: dict) -> int:
    return len(body["items"]) if "items" in body else len(body.get("entry", []))


def next_params(bundle: dict) -> list | None:
    """The query of a searchset's next link, or None on the last page."""
    url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return parse_qsl(urlsplit(url).query) if url else None


@dataclass
class Table:
    """One database of the run: its size, the app serving it, what was measured on it."""
    rows: int
    conn: psycopg.Connection
    client: Client
    load_seconds: float = 0.0
    requests: dict[str, list] = field(default_factory=dict)            # case -> query string per request
    queries: dict[str, tuple] = field(default_factory=dict)            # case -> (SQL, parameters)
    latencies: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    items: dict[str, int] = field(default_factory=dict)
    db_ms: dict[str, list[float]] = field(default_factory=lambda: collections.defaultdict(list))
    walk: list[float] = field(default_factory=list)                    # pages 1..WALK_PAGES, one each
    fhir_walk: list[float] = field(default_factory=list)               # the same through FHIR next links
    buffers: dict[str, tuple] = field(default_factory=dict)            # FHIR case -> (blocks, ms, nodes)
    plans: dict[str, str] = field(default_factory=dict)


def walk_pages(tables: list[Table]) -> None:
    """Follow next_cursor for WALK_PAGES pages on each table, page by page in turn."""
    tokens: list[str | None] = [None] * len(tables)
    for _ in range(WALK_PAGES):
        for i, table in enumerate(tables):
            elapsed, body = table.client.get({"cursor": tokens[i]} if tokens[i] else {})
            table.walk.append(elapsed)
            tokens[i] = body["next_cursor"]
    for table, token in zip(tables, tokens):
        name = CASES[1][0]
        table.requests[name] = [{"cursor": token}] if token else [{}]
        table.queries[name] = store.queue_query(
            store.QueueFilter(), after=cursor.decode(token, "referrals", (int, datetime, uuid.UUID)) if token else None,
            limit=PAGE)


def walk_fhir_pages(tables: list[Table]) -> None:
    """Follow the searchset's next links for WALK_PAGES pages on each table, page by page in turn
    (on a table with fewer pages, the first page follows the last)."""
    params: list[list | None] = [None] * len(tables)
    for _ in range(WALK_PAGES):
        for i, table in enumerate(tables):
            elapsed, bundle = table.client.fhir(params[i] or [])
            table.fhir_walk.append(elapsed)
            params[i] = next_params(bundle)
    for table, query in zip(tables, params):
        table.requests[FHIR_WALK] = [query or []]
        table.queries[FHIR_WALK] = fhir_sql(query or [])


def fhir_sql(params: list) -> tuple:
    """The SQL of the page a FHIR ServiceRequest search's query string asks for."""
    search = parse_search("ServiceRequest", params, lenient=False)
    order = fhir_store.service_request_order(search)
    after = (cursor.decode(search.cursor, f"fhir-ServiceRequest-{order}", fhir_store.KEY_TYPES[order])
             if search.cursor else None)
    query = fhir_store.service_request_query(search, after)
    return query.sql, query.params


def prepare(table: Table, requests: int) -> None:
    """The query string of every timed request of every case, and the query it runs."""
    report_ids = [r[0] for r in table.conn.execute(
        "SELECT report_id::text FROM referral.referral_reports TABLESAMPLE SYSTEM (5) LIMIT %s",
        (requests,)).fetchall()]
    report_ids += [r[0] for r in table.conn.execute(
        "SELECT report_id::text FROM referral.referral_reports LIMIT %s", (requests - len(report_ids),)).fetchall()]
    random.Random(7).shuffle(report_ids)
    for name, params, how in CASES:
        if params == "report":
            table.requests[name] = [{"report_id": report_id} for report_id in report_ids]
            table.queries[name] = store.queue_query(store.QueueFilter(report_id=report_ids[0]), after=None, limit=PAGE)
        elif how != "walk":
            after = middle_key(table.conn, how) if isinstance(how, store.QueueFilter) else None
            table.requests[name] = [{**params, **({"cursor": cursor.encode("referrals", *after)} if after else {})}]
            table.queries[name] = store.queue_query(
                store.QueueFilter(status=params.get("status"), priority=params.get("priority")), after=after,
                limit=PAGE)
    mrns = [row[0] for row in table.conn.execute(
        "SELECT patient_mrn FROM referral.referrals TABLESAMPLE SYSTEM (5) LIMIT %s", (requests,)).fetchall()]
    mrns += [row[0] for row in table.conn.execute(  # a small table's sample may be short, even empty
        "SELECT patient_mrn FROM referral.referrals LIMIT %s", (requests - len(mrns),)).fetchall()]
    random.Random(11).shuffle(mrns)
    # a day of changes from the middle of the table (full pages on both tables)
    middle = table.conn.execute("SELECT updated_at FROM referral.referrals ORDER BY updated_at"
                                " OFFSET %s LIMIT 1", (table.rows // 2,)).fetchone()[0].astimezone(UTC)
    changed = [("_lastUpdated", f"ge{fhir_time(middle)}"),
               ("_lastUpdated", f"lt{fhir_time(middle + timedelta(days=1))}")]
    for name, how in FHIR_CASES:
        if how == "walk":
            continue
        table.requests[name] = ([[("patient.identifier", mrn)] for mrn in mrns] if how == "mrn"
                                else [changed] if how == "updated" else [how])
        table.queries[name] = fhir_sql(table.requests[name][0])


def fhir_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def measure(tables: list[Table], cases: list[tuple[str, str]], requests: int) -> None:
    """Every case (name, path) on every table, a request of each case in turn and of each table
    in turn (alternating which goes first), so that whatever else the machine does slows both
    tables, and the queue and FHIR, alike."""
    for name, path in cases:
        for table in tables:
            for params in table.requests[name][:WARM_UP]:
                table.client.get(params, path)  # pool connections, plan cache, buffers
    for n in range(requests):
        for name, path in cases:
            for table in (tables if n % 2 == 0 else tables[::-1]):
                params = table.requests[name][n % len(table.requests[name])]
                elapsed, body = table.client.get(params, path)
                table.latencies[name].append(elapsed)
                table.items[name] = page_items(body)
    for name, *_ in cases:
        for n in range(DB_REPEAT):
            for table in (tables if n % 2 == 0 else tables[::-1]):
                table.db_ms[name].append(execution_ms(table.conn, *table.queries[name]))


def execution_ms(conn: psycopg.Connection, query: sql.Composable, params: list) -> float:
    """The database's own time for the page's query (EXPLAIN ANALYZE's Execution Time)."""
    plan = conn.execute(sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + query, params).fetchone()[0]
    return plan[0]["Execution Time"]


def explain(conn: psycopg.Connection, query: sql.Composable, params: list) -> str:
    rows = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + query, params).fetchall()
    return "\n".join("    " + row[0] for row in rows)


def buffers(conn: psycopg.Connection, query: sql.Composable, params: list) -> tuple[int, int, float, str]:
    """(shared blocks hit, read, execution ms, the plan's nodes) of one run of the query."""
    [plan] = conn.execute(sql.SQL("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ") + query, params).fetchone()[0]
    nodes = []

    def walk(node: dict) -> None:
        index = node.get("Index Name")
        nodes.append(f"{node['Node Type']}" + (f" {index}" if index else ""))
        for child in node.get("Plans", []):
            walk(child)
    walk(plan["Plan"])
    top = plan["Plan"]
    return top["Shared Hit Blocks"], top["Shared Read Blocks"], plan["Execution Time"], " > ".join(nodes)


def page_reads(referral_ids: list[str]) -> list[tuple[str, sql.Composable, list]]:
    """The other SQL of a FHIR page: its referrals' reports and history (store.links_and_history)."""
    return [("reports of a page's referrals", sql.SQL(fhir_store.LINKS), [referral_ids]),
            ("history of a page's referrals", sql.SQL(fhir_store.HISTORY), [referral_ids])]


# -- main -------------------------------------------------------------------------------------
def serve(pg: LocalPostgres, dbname: str, token: str):
    """The referral app on one database of the server: migrations applied, a staff token known."""
    from services.referral.app import create_app

    db = LocalPostgres(pg.state_dir, pg.port, host=pg.host, dbname=dbname)
    db.bootstrap()  # the database, its roles' schemas and grants (idempotent)
    env = {"CLINIC_STATE_DIR": str(pg.state_dir), "CLINIC_PG_HOST": pg.host, "CLINIC_PG_PORT": str(pg.port),
           "CLINIC_DB_NAME": dbname, "CLINIC_DATABASE_URL": db.role_url("referral"),
           "CLINIC_ADMIN_DATABASE_URL": db.admin_url(), "CLINIC_KAFKA_BOOTSTRAP": "127.0.0.1:9",
           "CLINIC_SECRET_KEY": "bench"}
    settings = settings_module.load("referral", env=env)
    with psycopg.connect(settings.database_url) as conn:
        apply_migrations(conn, "referral", "services.referral")
    with psycopg.connect(settings.admin_database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO identity.staff (name, role, token_hash) VALUES ('bench-admin', 'admin', %s)",
                     (hash_secret(token),))
    app = create_app(settings)
    logging.getLogger().setLevel(logging.WARNING)  # create_app logs JSON lines at INFO; keep the figures readable
    return app, settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000, help="the ceiling run's table size")
    parser.add_argument("--requests", type=int, default=400, help="timed requests per case and table")
    args = parser.parse_args()

    wall = time.perf_counter()
    now = datetime.now(UTC)
    token = new_secret("staff")
    print("starting PostgreSQL in a temporary folder ...", flush=True)
    with running_postgres() as pg, contextlib.ExitStack() as stack:  # the folder is deleted on exit
        tables = []
        for rows, dbname in ((args.small, "clinic_small"), (args.rows, "clinic")):
            app, settings = serve(pg, dbname, token)
            stack.callback(app.extensions["clinic"].pool.close)
            conn = stack.enter_context(psycopg.connect(settings.database_url, autocommit=True))
            print(f"\nloading {rows:,} referrals into database {dbname} ...", flush=True)
            started = time.perf_counter()
            timings = load(conn, rows, add_providers(conn), now)
            table = Table(rows, conn, Client(app, token), load_seconds=time.perf_counter() - started)
            print(f"  loaded in {table.load_seconds:.1f} s "
                  f"({', '.join(f'{k} {v:.1f} s' for k, v in timings.items())})")
            print(f"  {describe(conn)}")
            prepare(table, args.requests)
            tables.append(table)
        print(f"\ntiming {len(CASES)} queue cases and {len(FHIR_CASES)} FHIR cases x {args.requests} requests on "
              f"each table, interleaved; {uptime()} ...", flush=True)
        started = time.perf_counter()
        walk_pages(tables)
        walk_fhir_pages(tables)
        measure(tables, [(name, "/v1/referrals") for name, *_ in CASES] + [(name, FHIR_PATH) for name, _ in FHIR_CASES],
                args.requests)
        print(f"  timed in {time.perf_counter() - started:.1f} s; {uptime()}")
        big = tables[1]
        for name in (CASES[1][0], CASES[2][0], "priority=urgent, middle", "status=waitlisted, middle",
                     "status=waitlisted&priority=urgent", FHIR_WALK):
            big.plans[name] = explain(big.conn, *big.queries[name])
        for name, _ in FHIR_CASES:
            big.buffers[name] = buffers(big.conn, *big.queries[name])
        _, bundle = big.client.fhir([])
        for name, query, params in page_reads([e["resource"]["id"] for e in bundle["entry"]]):
            big.buffers[name] = buffers(big.conn, query, params)
        report(tables, args.requests)
    print(f"\ntotal {time.perf_counter() - wall:.0f} s; {uptime()}")


def uptime() -> str:
    with open("/proc/loadavg") as f:
        return "load average " + ", ".join(f.read().split()[:3])


def report(tables: list[Table], requests: int) -> None:
    small, big = tables
    print(f"\nThrough the Flask test client, {PAGE} per page: GET /v1/referrals and GET {FHIR_PATH} (FHIR), "
          f"{requests} requests per case and table, after {WARM_UP} warm-up requests each, all cases in turn.\n"
          f"Request milliseconds p50 / p95 / p99; then \"db\": the page query's own execution time, median of "
          f"{DB_REPEAT} EXPLAIN ANALYZE; then items on the page.")
    names = [name for name, *_ in CASES] + [name for name, _ in FHIR_CASES]
    width = max(len(name) for name in names) + 2

    def cells(latencies: list[float], db_ms: list[float] | None) -> str:
        p50, p95, p99 = (v * 1000 for v in figures(latencies))
        db = f"  db {statistics.median(db_ms):5.2f}" if db_ms else " " * 10
        return f"{p50:6.2f} / {p95:6.2f} / {p99:6.1f}{db}"

    print(f"{'case':<{width}}{f'{small.rows:,} rows':>34}{f'{big.rows:,} rows':>34}   items")
    for name in names:
        print(f"{name:<{width}}{cells(small.latencies[name], small.db_ms[name]):>34}"
              f"{cells(big.latencies[name], big.db_ms[name]):>34}   {small.items[name]}/{big.items[name]}")
    for label, small_walk, big_walk in ((f"walking pages 1-{WALK_PAGES} (one each)", small.walk, big.walk),
                                        (f"FHIR walking pages 1-{WALK_PAGES}", small.fhir_walk, big.fhir_walk)):
        print(f"{label:<{width}}{cells(small_walk, None):>34}{cells(big_walk, None):>34}")
    # Only cases whose pages hold as many items on both tables: JSON for 10 items costs less than for 50.
    for label, group in (("queue", [name for name, *_ in CASES]), ("FHIR", [name for name, _ in FHIR_CASES])):
        ratios = {name: statistics.median(big.latencies[name]) / statistics.median(small.latencies[name])
                  for name in group if small.items[name] == big.items[name]}
        worst = max(ratios, key=ratios.get)
        print(f"\n{label}: p50 at {big.rows:,} rows / p50 at {small.rows:,} rows, over the {len(ratios)} cases with "
              f"full pages on both: median {statistics.median(ratios.values()):.2f}x, largest {ratios[worst]:.2f}x "
              f"({worst})")
    fhir_p50 = statistics.median(statistics.median(big.latencies[name]) for name, _ in FHIR_CASES)
    queue_p50 = statistics.median(statistics.median(big.latencies[name]) for name, *_ in CASES)
    print(f"at {big.rows:,} rows, median over cases of p50: FHIR {fhir_p50 * 1000:.2f} ms, queue "
          f"{queue_p50 * 1000:.2f} ms ({fhir_p50 / queue_p50:.2f}x)")
    print(f"loading {big.rows:,} referrals (slots, reports, history, indexes, ANALYZE) took {big.load_seconds:.1f} s")
    print(f"\nFHIR searches' SQL at {big.rows:,} rows, one EXPLAIN (ANALYZE, BUFFERS): shared blocks hit + read, "
          f"execution ms, plan nodes")
    for name, (hit, read, ms, nodes) in big.buffers.items():
        print(f"  {name:<{width}}{hit:>6} + {read:<4} {ms:6.2f} ms  {nodes}")
    for name, plan in big.plans.items():
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the page query at {big.rows:,} rows, {name}:\n{plan}")


if __name__ == "__main__":
    main()
