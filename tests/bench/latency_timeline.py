"""Where a report's time goes, hop by hop, from POST /v1/reports to its final status (issue 15).

    .venv/bin/python tests/bench/latency_timeline.py [--rate 5] [--seconds 60] [--slowest 8]

Not a test (pytest does not collect this file). It starts its own stack (running_stack), and
installs, on that stack only, triggers that stamp clock_timestamp() (not now(): rows of one
transaction share now()) when each outbox row is written and marked sent, when each inbox
row is written, and when a report's status view first becomes final. It sends reports
open-loop (urgent, specialist and self-care in turn) at --rate per second, waits for them
all to be final, and prints each hop's p50/p99/max and the slowest reports' timelines.

The hops (every time is from the database's clock, but the POST's, from this process's):
  api          POST sent -> intake outbox row written (in the request's transaction)
  X relay      outbox row written -> the relay's transaction began (sent_at = now()):
               the commit, its NOTIFY and the relay waking up
  X publish    relay began -> row marked sent (the broker acked the batch)
  X->Y kafka   acked -> Y's inbox row written: the consumer's fetch and poll. From the mark,
               which comes after the ack: the consumer may have the event first (a short or
               negative hop; the slowest timelines show "inbox" before "acked")
  Y handle     inbox row written -> Y's outbox row written (the handler)
  intake apply intake's inbox row (of the event that made it final) -> final
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench.pipeline.seed import add_provider_with_slots  # noqa: E402
from tests.e2e.flow_helpers import SELF_CARE, SPECIALIST, URGENT, report_body, submit  # noqa: E402
from tests.live_stack import running_stack  # noqa: E402

SCHEMAS = ("intake", "triage", "referral")

STAMP_SQL = """
CREATE SCHEMA IF NOT EXISTS bench_timeline;
CREATE TABLE IF NOT EXISTS bench_timeline.stamps (
    at timestamptz NOT NULL DEFAULT clock_timestamp(), schema text NOT NULL, what text NOT NULL,
    event_id text, report_id text);
-- One function per table: PL/pgSQL resolves every field a condition names, taken or not.
CREATE OR REPLACE FUNCTION bench_timeline.stamp_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_timeline.stamps (schema, what, event_id) VALUES (TG_TABLE_SCHEMA, 'inbox', NEW.event_id);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION bench_timeline.stamp_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bench_timeline.stamps (schema, what, event_id, report_id)
            VALUES (TG_TABLE_SCHEMA, 'outbox', NEW.event_id::text, NEW.key);
    ELSIF OLD.sent_at IS NULL AND NEW.sent_at IS NOT NULL THEN
        INSERT INTO bench_timeline.stamps (schema, what, event_id, report_id)
            VALUES (TG_TABLE_SCHEMA, 'acked', NEW.event_id::text, NEW.key);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION bench_timeline.stamp_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.referral IS NOT NULL OR NEW.care_level IS NOT DISTINCT FROM 'self_care')
       AND NOT (OLD.referral IS NOT NULL OR OLD.care_level IS NOT DISTINCT FROM 'self_care') THEN
        INSERT INTO bench_timeline.stamps (schema, what, report_id) VALUES ('intake', 'final', NEW.report_id::text);
    END IF;
    RETURN NULL;
END $$;
GRANT USAGE ON SCHEMA bench_timeline TO PUBLIC;
GRANT INSERT ON bench_timeline.stamps TO PUBLIC;
""" + "".join(f"""
CREATE TRIGGER bench_timeline_outbox AFTER INSERT OR UPDATE ON {s}.outbox
    FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_outbox();
CREATE TRIGGER bench_timeline_inbox AFTER INSERT ON {s}.inbox
    FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_inbox();
""" for s in SCHEMAS) + """
CREATE TRIGGER bench_timeline_final AFTER UPDATE ON intake.reports
    FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_final();
"""

# Per report: each schema's first outbox event (written, relay began, acked), the inbox row
# of each consumer, and the final stamp. Epoch seconds.
TIMELINE_SQL = """
WITH outbox AS (
    SELECT DISTINCT ON (o.schema, o.report_id) o.schema, o.report_id, o.event_id, o.at AS written,
           extract(epoch FROM x.sent_at) AS relay_began, a.at AS acked
    FROM bench_timeline.stamps o
    JOIN (SELECT 'intake' s, event_id::text e, sent_at FROM intake.outbox
          UNION ALL SELECT 'triage', event_id::text, sent_at FROM triage.outbox
          UNION ALL SELECT 'referral', event_id::text, sent_at FROM referral.outbox) x
      ON x.s = o.schema AND x.e = o.event_id
    LEFT JOIN bench_timeline.stamps a ON a.what = 'acked' AND a.event_id = o.event_id
    WHERE o.what = 'outbox' ORDER BY o.schema, o.report_id, o.at)
SELECT o.report_id, o.schema, extract(epoch FROM o.written), o.relay_began, extract(epoch FROM o.acked),
       (SELECT extract(epoch FROM min(i.at)) FROM bench_timeline.stamps i
         WHERE i.what = 'inbox' AND i.event_id = o.event_id AND i.schema = %s) AS next_inbox
FROM outbox o WHERE o.report_id = ANY(%s)
"""
# (producer, consumer): triage's decision goes to both referral and intake.
HOPS = [("intake", "triage"), ("triage", "referral"), ("triage", "intake"), ("referral", "intake")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def send_open_loop(stack, rate: float, seconds: float) -> dict[str, tuple[float, str]]:
    """report_id -> (POST sent, kind), each POST started on schedule whatever the others do."""
    key = stack.kiosk_key()
    intake = stack.base_url["intake"]
    kinds = [("urgent", URGENT), ("specialist", SPECIALIST), ("self_care", SELF_CARE)]
    sent: dict[str, tuple[float, str]] = {}
    lock = threading.Lock()

    def post(index: int) -> None:
        kind, shape = kinds[index % len(kinds)]
        started = time.time()
        response = submit(intake, key, report_body(**shape))
        response.raise_for_status()
        with lock:
            sent[response.json()["report_id"]] = (started, kind)

    count = int(rate * seconds)
    begin = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = []
        for index in range(count):
            time.sleep(max(0.0, begin + index / rate - time.monotonic()))
            futures.append(pool.submit(post, index))
        for future in futures:
            future.result()
    return sent


def wait_final(conn, report_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = conn.execute("SELECT count(DISTINCT report_id) FROM bench_timeline.stamps"
                            " WHERE what = 'final' AND report_id = ANY(%s)", (report_ids,)).fetchone()[0]
        if done == len(report_ids):
            return
        time.sleep(0.5)
    raise SystemExit(f"only {done} of {len(report_ids)} reports final after {timeout:.0f} s")


def timelines(conn, sent: dict[str, tuple[float, str]]) -> dict[str, dict[str, float]]:
    """report_id -> {point: epoch seconds}, in the order the report passed them."""
    ids = list(sent)
    points: dict[str, dict[str, float]] = {r: {"post": sent[r][0]} for r in ids}
    for schema, consumer in HOPS:
        for report_id, _s, written, began, acked, inbox in conn.execute(
                TIMELINE_SQL.replace("FROM outbox o WHERE", "FROM outbox o WHERE o.schema = %s AND"),
                (consumer, schema, ids)).fetchall():
            p = points[report_id]
            p[f"{schema} outbox"] = float(written)
            p[f"{schema} relay"] = float(began)
            if acked is not None:
                p[f"{schema} acked"] = float(acked)
            if inbox is not None:
                p[f"{consumer} inbox<-{schema}"] = float(inbox)
    for report_id, final in conn.execute(
            "SELECT report_id, extract(epoch FROM min(at)) FROM bench_timeline.stamps"
            " WHERE what = 'final' AND report_id = ANY(%s) GROUP BY 1", (ids,)).fetchall():
        points[report_id]["final"] = float(final)
    return points


def hops(p: dict[str, float], kind: str) -> dict[str, float]:
    """Durations (ms) between consecutive points of the report's path."""
    path = ["post", "intake outbox", "intake relay", "intake acked", "triage inbox<-intake",
            "triage outbox", "triage relay", "triage acked"]
    path += (["intake inbox<-triage"] if kind == "self_care" else
             ["referral inbox<-triage", "referral outbox", "referral relay", "referral acked",
              "intake inbox<-referral"])
    path.append("final")
    names = {"intake outbox": "api", "triage outbox": "triage handle", "referral outbox": "referral handle",
             "final": "intake apply"}
    out = {}
    for before, after in zip(path, path[1:]):
        if before in p and after in p:
            name = names.get(after) or (after.replace(" relay", " relay wake").replace(" acked", " publish")
                                        if " inbox<-" not in after else
                                        f"{after.split(' inbox<-')[1]}->{after.split(' inbox<-')[0]} kafka")
            out[name] = (p[after] - p[before]) * 1000
    if "final" in p:
        out["TOTAL post->final"] = (p["final"] - p["post"]) * 1000
    return out


def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_report(points, sent, slowest: int, load_before: str) -> None:
    per_hop: dict[str, list[float]] = {}
    for report_id, p in points.items():
        for name, ms in hops(p, sent[report_id][1]).items():
            per_hop.setdefault(name, []).append(ms)
    # The machine is shared: a run is comparable only with one at a similar load, before and after.
    print(f"\nper hop (ms), {len(points)} reports, load average {load_before} before, {load_text()} after")
    print(f"{'hop':<26}{'n':>5}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name, values in per_hop.items():
        print(f"{name:<26}{len(values):>5}{statistics.median(values):>9.1f}{percentile(values, 0.9):>9.1f}"
              f"{percentile(values, 0.99):>9.1f}{max(values):>9.1f}")
    totals = sorted(points, key=lambda r: -hops(points[r], sent[r][1]).get("TOTAL post->final", 0))
    print(f"\nslowest {slowest} reports (ms from POST):")
    for report_id in totals[:slowest]:
        p = points[report_id]
        steps = "  ".join(f"{k}={(v - p['post']) * 1000:.0f}" for k, v in sorted(p.items(), key=lambda kv: kv[1])
                          if k != "post")
        print(f"  {report_id[:8]} {sent[report_id][1]:<10} {steps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5.0, help="reports per second (open loop)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slowest", type=int, default=8)
    parser.add_argument("--slots", type=int, default=0,
                        help="free slots seeded first (as make bench does): the first reports are booked")
    parser.add_argument("--keep", action="store_true", help="keep the stack's state folder (its logs)")
    args = parser.parse_args()
    import psycopg

    with running_stack(prefix="latency-timeline-", keep=args.keep) as stack:
        admin_url = stack.settings().admin_database_url
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(STAMP_SQL)
            add_provider_with_slots(stack, args.slots)
            send_open_loop(stack, 2.0, 3.0)  # warm-up: connections, metadata, first fetches
            time.sleep(3)
            load_before = load_text()
            sent = send_open_loop(stack, args.rate, args.seconds)
            wait_final(conn, list(sent), timeout=120)
            print_report(timelines(conn, sent), sent, args.slowest, load_before)


if __name__ == "__main__":
    main()
