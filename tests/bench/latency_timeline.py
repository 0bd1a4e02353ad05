"""Where a report's time goes, hop by hop, from POST /v1/reports to its final status (issue 15).

    .venv/bin/python tests/bench/latency_timeline.py [--rate 5] [--seconds 60] [--slots 500]
        [--profile DIR] [--slowest 8]

Not a test (pytest does not collect this file). It starts its own stack (running_stack), and
installs, on that stack only, triggers that stamp clock_timestamp() (not now(): rows of one
transaction share now()) and the transaction id when each outbox row is written and marked
sent, when each inbox row is written, when a report's status view first becomes final, and
(deferred constraint triggers, which run as the transaction commits) when each of those
transactions commits. It sends the reports make bench sends (urgent, specialist, self care
3:3:4, keep-alive clients, open loop: tests/bench/pipeline/load.py) at --rate per second,
waits for them all to be final, and prints:

- each hop's p50/p90/p99/max (ms), on the report's path;
- each stage's batches: a consumer's transactions (events per transaction, how long from its
  inbox INSERT to its commit, and the gap from the previous commit to it: poll, fetch and
  decode) and a relay's batches (rows, publish time, the gap between batches);
- CPU per process of the stack over the load (cores), beside the whole machine's;
- with --profile DIR, py-spy's wall-clock profile of each worker process over the load (every
  thread, idle included), summarised per thread (tests/bench/py_spy_profile.py);
- the slowest reports' timelines.

The hops (every time is from the database's clock, but the POST's, from this process's):
  api             POST due -> intake outbox row written (in the request's transaction)
  X commit        X's outbox row written -> that transaction's commit (the rest of its batch,
                  and the deferred stamps themselves, come first)
  X relay wait    committed -> the relay's batch before it was done (the relay was busy)
  X relay wake    -> the relay's transaction began (sent_at = now()): NOTIFY and wake-up
  X publish       relay began -> row marked sent (the broker acked the batch)
  X->Y busy       acked -> Y's consumer committed the transaction before the one that took
                  the event (Y was busy with its last batch while the event was there)
  X->Y kafka      -> Y's inbox row written: fetch, poll, decode. From the mark, which comes
                  after the ack: the consumer may have the event first (a short hop)
  Y handle        inbox row written -> Y's outbox row written (the handler)
  intake apply    intake's inbox row (of the event that made it final) -> final
  final commit    -> its transaction committed (the status a client can read)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench import process_cpu, py_spy_profile  # noqa: E402
from tests.bench.pipeline.bodies import report_bytes  # noqa: E402
from tests.bench.pipeline.http_client import KeepAliveClient  # noqa: E402
from tests.bench.pipeline.load import open_loop  # noqa: E402
from tests.bench.pipeline.seed import add_provider_with_slots  # noqa: E402
from tests.live_stack import running_stack  # noqa: E402

SCHEMAS = ("intake", "triage", "referral")
KIOSKS = 16

STAMP_SQL = """
CREATE SCHEMA IF NOT EXISTS bench_timeline;
CREATE TABLE IF NOT EXISTS bench_timeline.stamps (
    at timestamptz NOT NULL DEFAULT clock_timestamp(), xid bigint NOT NULL DEFAULT txid_current(),
    schema text NOT NULL, what text NOT NULL, event_id text, report_id text);
-- One function per table: PL/pgSQL resolves every field a condition names, taken or not.
-- TG_ARGV[0]: '' (the row's own stamp) or ' commit' (the deferred trigger's, at commit).
CREATE OR REPLACE FUNCTION bench_timeline.stamp_inbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_timeline.stamps (schema, what, event_id) VALUES (TG_TABLE_SCHEMA, 'inbox' || TG_ARGV[0], NEW.event_id);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION bench_timeline.stamp_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO bench_timeline.stamps (schema, what, event_id, report_id)
            VALUES (TG_TABLE_SCHEMA, 'outbox' || TG_ARGV[0], NEW.event_id::text, NEW.key);
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
        INSERT INTO bench_timeline.stamps (schema, what, report_id) VALUES ('intake', 'final' || TG_ARGV[0], NEW.report_id::text);
    END IF;
    RETURN NULL;
END $$;
GRANT USAGE ON SCHEMA bench_timeline TO PUBLIC;
GRANT INSERT ON bench_timeline.stamps TO PUBLIC;
""" + "".join(f"""
CREATE TRIGGER bench_timeline_outbox AFTER INSERT OR UPDATE ON {s}.outbox
    FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_outbox('');
CREATE CONSTRAINT TRIGGER bench_timeline_outbox_commit AFTER INSERT ON {s}.outbox
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_outbox(' commit');
CREATE TRIGGER bench_timeline_inbox AFTER INSERT ON {s}.inbox
    FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_inbox('');
CREATE CONSTRAINT TRIGGER bench_timeline_inbox_commit AFTER INSERT ON {s}.inbox
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_inbox(' commit');
""" for s in SCHEMAS) + """
CREATE TRIGGER bench_timeline_final AFTER UPDATE ON intake.reports
    FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_final('');
CREATE CONSTRAINT TRIGGER bench_timeline_final_commit AFTER UPDATE ON intake.reports
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_timeline.stamp_final(' commit');
"""

STAMPS_SQL = ("SELECT extract(epoch FROM at)::float8, xid, schema, what, event_id, report_id"
              " FROM bench_timeline.stamps ORDER BY at")
SENT_AT_SQL = " UNION ALL ".join(
    f"SELECT '{s}', event_id::text, extract(epoch FROM sent_at)::float8 FROM {s}.outbox WHERE sent_at IS NOT NULL"
    for s in SCHEMAS)

# (producer, consumer) of each Kafka hop: triage's decision goes to both referral and intake.
REFERRED_PATH = [("intake", "triage"), ("triage", "referral"), ("referral", "intake")]
SELF_CARE_PATH = [("intake", "triage"), ("triage", "intake")]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- load ---------------------------------------------------------------------------------
def send_open_loop(stack, keys: list[str], rate: float, seconds: float) -> dict[str, float]:
    """report_id -> when its POST was due (epoch s), as make bench's measure 4 sends them."""
    count = max(1, round(rate * seconds))
    senders = min(64, max(16, int(rate * 0.5) + 1))  # as measure 4: half a second in flight
    intake = stack.base_url["intake"]
    result = open_loop(lambda n: KeepAliveClient(intake, keys[n % len(keys)]), report_bytes(count), rate, senders)
    refused = [s for s in result.samples if s.status != 202]
    if refused:
        raise SystemExit(f"{len(refused)} reports refused (first status {refused[0].status})")
    return {s.report_id: s.sent_wall for s in result.samples}


def wait_final(conn, report_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = conn.execute("SELECT count(DISTINCT report_id) FROM bench_timeline.stamps"
                            " WHERE what = 'final commit' AND report_id = ANY(%s)", (report_ids,)).fetchone()[0]
        if done == len(report_ids):
            return
        time.sleep(0.5)
    raise SystemExit(f"only {done} of {len(report_ids)} reports final after {timeout:.0f} s")


# -- what the stamps say -------------------------------------------------------------------
class Stamps:
    """The stamps, indexed: each row's time and transaction, each transaction's commit."""

    def __init__(self, rows, sent_at):
        self.commit: dict[int, float] = {}           # xid -> its first deferred stamp
        self.outbox: dict[tuple[str, str], tuple[float, int, str]] = {}  # (schema, report) -> first event
        self.acked: dict[str, tuple[float, int, str]] = {}  # event_id -> (at, relay xid, schema)
        self.inbox: dict[tuple[str, str], tuple[float, int]] = {}  # (schema, event_id) -> (at, xid)
        self.final: dict[str, tuple[float, int]] = {}
        self.sent_at: dict[str, float] = {event: at for _s, event, at in sent_at}
        for at, xid, schema, what, event_id, report_id in rows:
            if what.endswith(" commit"):
                self.commit.setdefault(xid, at)
            if what == "outbox":
                self.outbox.setdefault((schema, report_id), (at, xid, event_id))
            elif what == "acked":
                self.acked.setdefault(event_id, (at, xid, schema))
            elif what == "inbox":
                self.inbox.setdefault((schema, event_id), (at, xid))
            elif what == "final":
                self.final.setdefault(report_id, (at, xid))

    def consumer_transactions(self, schema: str) -> dict[int, tuple[float, float, int]]:
        """xid -> (first inbox stamp, commit, events) of each transaction of `schema`'s consumer."""
        first: dict[int, float] = {}
        count: dict[int, int] = defaultdict(int)
        for (s, _event), (at, xid) in self.inbox.items():
            if s == schema:
                first[xid] = min(first.get(xid, at), at)
                count[xid] += 1
        return {x: (first[x], self.commit.get(x, first[x]), count[x]) for x in first}

    def relay_batches(self, schema: str) -> dict[int, tuple[float, float, int]]:
        """xid -> (began, acked, rows) of each batch of `schema`'s relay."""
        began: dict[int, float] = {}
        acked: dict[int, float] = {}
        count: dict[int, int] = defaultdict(int)
        for event, (at, xid, s) in self.acked.items():
            if s == schema:
                began[xid] = self.sent_at.get(event, at)
                acked[xid] = min(acked.get(xid, at), at)
                count[xid] += 1
        return {x: (began[x], acked[x], count[x]) for x in began}


def _ordered(spans: dict[int, tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    return sorted(spans.values())


def _before(ordered: list[tuple[float, float, int]], start: float) -> float | None:
    """The end (second field) of the last of `ordered` (by start) that began before `start`."""
    best = None
    for began, ended, _n in ordered:
        if began >= start:
            break
        best = ended
    return best


def timelines(stamps: Stamps, due: dict[str, float]) -> dict[str, dict[str, float]]:
    """report_id -> {point: epoch seconds} along the report's path."""
    consumer_txs = {s: stamps.consumer_transactions(s) for s in SCHEMAS}
    consumers = {s: _ordered(txs) for s, txs in consumer_txs.items()}
    relays = {s: _ordered(stamps.relay_batches(s)) for s in SCHEMAS}
    out = {}
    for report_id, post in due.items():
        p = {"post": post}
        referred = ("referral", report_id) in stamps.outbox
        for producer, consumer in (REFERRED_PATH if referred else SELF_CARE_PATH):
            written, xid, event = stamps.outbox.get((producer, report_id), (None, None, None))
            if written is None:
                break
            p[f"{producer} outbox"] = written
            committed = stamps.commit.get(xid)
            if committed is not None:
                p[f"{producer} commit"] = committed
                busy_until = _before(relays[producer], stamps.sent_at.get(event, committed))
                if busy_until is not None and busy_until > committed:
                    p[f"{producer} relay free"] = busy_until
            if event in stamps.sent_at:
                p[f"{producer} relay"] = stamps.sent_at[event]
            if event in stamps.acked:
                p[f"{producer} acked"] = stamps.acked[event][0]
            if (consumer, event) in stamps.inbox:
                at, cxid = stamps.inbox[(consumer, event)]
                previous = _before(consumers[consumer], consumer_txs[consumer][cxid][0])
                if previous is not None and event in stamps.acked and previous > stamps.acked[event][0]:
                    p[f"{consumer} free<-{producer}"] = previous
                p[f"{consumer} inbox<-{producer}"] = at
        if report_id in stamps.final:
            at, xid = stamps.final[report_id]
            p["final"] = at
            if xid in stamps.commit:
                p["final commit"] = stamps.commit[xid]
        out[report_id] = p
    return out


def hops(p: dict[str, float]) -> dict[str, float]:
    """Durations (ms) between consecutive points of the report's path; a point the report did
    not pass (a relay or consumer that was not busy) is left out."""
    referred = "referral outbox" in p
    path = ["post"]
    for producer, consumer in (REFERRED_PATH if referred else SELF_CARE_PATH):
        if producer != "intake":
            path.append(f"{producer} outbox")
        else:
            path.append("intake outbox")
        path += [f"{producer} commit", f"{producer} relay free", f"{producer} relay", f"{producer} acked",
                 f"{consumer} free<-{producer}", f"{consumer} inbox<-{producer}"]
    path += ["final", "final commit"]
    names = {"intake outbox": "api", "triage outbox": "triage handle", "referral outbox": "referral handle",
             "final": "intake apply"}
    out: dict[str, float] = {}
    passed = [point for point in path if point in p]
    for before, after in zip(passed, passed[1:]):
        if after in names:
            name = names[after]
        elif " inbox<-" in after or " free<-" in after:
            consumer, producer = after.split(" inbox<-" if " inbox<-" in after else " free<-")
            name = f"{producer}->{consumer} {'kafka' if ' inbox<-' in after else 'busy'}"
        else:
            name = {" commit": "{} commit", " relay free": "{} relay wait", " relay": "{} relay wake",
                    " acked": "{} publish"}[after[after.index(" "):]].format(after.split(" ")[0])
            if after == "final commit":
                name = "final commit"
        out[name] = (p[after] - p[before]) * 1000
    if "final commit" in p:
        out["TOTAL post->final"] = (p["final commit"] - p["post"]) * 1000
    return out


# -- printing ------------------------------------------------------------------------------
def load_text() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(name: str, values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    return (f"{name:<28}{len(values):>6}{statistics.median(values) * scale:>9.{digits}f}"
            f"{percentile(values, 0.9) * scale:>9.{digits}f}{percentile(values, 0.99) * scale:>9.{digits}f}"
            f"{max(values) * scale:>9.{digits}f}")


def print_hops(points: dict[str, dict[str, float]]) -> None:
    order = ["api", "intake commit", "intake relay wait", "intake relay wake", "intake publish",
             "intake->triage busy", "intake->triage kafka", "triage handle", "triage commit",
             "triage relay wait", "triage relay wake", "triage publish", "triage->referral busy",
             "triage->referral kafka", "referral handle", "referral commit", "referral relay wait",
             "referral relay wake", "referral publish", "referral->intake busy", "referral->intake kafka",
             "triage->intake busy", "triage->intake kafka", "intake apply", "final commit", "TOTAL post->final"]
    per_hop: dict[str, list[float]] = defaultdict(list)
    for p in points.values():
        for name, ms in hops(p).items():
            per_hop[name].append(ms)
    print(f"{'hop (ms; busy/wait: only reports that waited)':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for name in order + sorted(set(per_hop) - set(order)):
        if per_hop.get(name):
            print(_row(name, per_hop[name]))


def print_batches(stamps: Stamps) -> None:
    print(f"\n{'batches':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    for schema in SCHEMAS:
        txs = _ordered(stamps.consumer_transactions(schema))
        if txs:
            # Events per transaction as an event sees it (a big batch holds many events).
            sizes = [n for _s, _c, n in txs for _ in range(n)]
            print(_row(f"{schema} consumer: events/tx", sizes, digits=0))
            print(_row(f"  inbox -> commit ms", [c - s for s, c, _n in txs], 1000))
            print(_row(f"  gap after last commit ms", [s - c0 for (_s0, c0, _), (s, _c, _n) in zip(txs, txs[1:])],
                       1000))
        batches = _ordered(stamps.relay_batches(schema))
        if batches:
            print(_row(f"{schema} relay: rows/batch", [n for _b, _a, n in batches for _ in range(n)], digits=0))
            print(_row(f"  began -> acked ms", [a - b for b, a, _n in batches], 1000))
            print(_row(f"  gap after last batch ms", [b - a0 for (_b0, a0, _), (b, _a, _n) in zip(batches, batches[1:])],
                       1000))


def print_cpu(spent: dict[str, float], own: float, seconds: float, machine: tuple[float, float]) -> None:
    busy, total = machine
    ours = sum(spent.values()) + own
    print(f"\nCPU over the load ({seconds:.1f} s), in cores (of {os.cpu_count()}):")
    for name, cpu in sorted(spent.items(), key=lambda kv: -kv[1]):
        if cpu / seconds >= 0.005:
            print(f"  {name:<24}{cpu / seconds:6.2f}")
    print(f"  {'load generator (this)':<24}{own / seconds:6.2f}")
    print(f"  {'= this run':<24}{ours / seconds:6.2f}")
    print(f"  {'whole machine':<24}{busy / seconds:6.2f}  ({100 * busy / total:.0f}% busy; others' processes"
          f" {max(0.0, busy - ours) / seconds:.2f})")


def print_cpu_per_report(spent: dict[str, float], own: float, reports: int, rate: float) -> None:
    """CPU ms per report, from the load's start until every report was final (the tail too),
    and the cores that cost takes at the offered rate: a stack that needs most of the
    machine's cores queues for them, whatever else runs."""
    print(f"\nCPU per report, load start -> all final (ms; cores needed at {rate:g}/s):")
    total = 0.0
    for name, cpu in sorted(spent.items(), key=lambda kv: -kv[1]):
        ms = 1000 * cpu / reports
        total += ms
        if ms >= 0.05:
            print(f"  {name:<24}{ms:7.2f}  {ms * rate / 1000:5.2f}")
    own_ms = 1000 * own / reports
    print(f"  {'load generator (this)':<24}{own_ms:7.2f}  {own_ms * rate / 1000:5.2f}")
    print(f"  {'= stack':<24}{total:7.2f}  {total * rate / 1000:5.2f}")


def print_slowest(points: dict[str, dict[str, float]], slowest: int) -> None:
    totals = sorted(points, key=lambda r: -hops(points[r]).get("TOTAL post->final", 0))
    print(f"\nslowest {slowest} reports (ms from POST due):")
    for report_id in totals[:slowest]:
        p = points[report_id]
        steps = "  ".join(f"{k}={(v - p['post']) * 1000:.0f}" for k, v in sorted(p.items(), key=lambda kv: kv[1])
                          if k != "post")
        print(f"  {report_id[:8]} {steps}")


# -- the run -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5.0, help="reports per second (open loop)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--slowest", type=int, default=8)
    parser.add_argument("--slots", type=int, default=500,
                        help="free slots seeded first (as make bench does): the first reports are booked")
    parser.add_argument("--profile", type=Path, help="py-spy each worker over the load, into this folder")
    parser.add_argument("--keep", action="store_true", help="keep the stack's state folder (its logs)")
    args = parser.parse_args()
    import psycopg

    with running_stack(prefix="latency-timeline-", keep=args.keep) as stack:
        with psycopg.connect(stack.settings().admin_database_url, autocommit=True) as conn:
            conn.execute(STAMP_SQL)
            keys = [stack.kiosk_key(f"timeline-kiosk-{n}") for n in range(KIOSKS)]
            add_provider_with_slots(stack, args.slots)
            send_open_loop(stack, keys, 2.0, 3.0)  # warm-up: connections, metadata, first fetches
            time.sleep(3)
            conn.execute("TRUNCATE bench_timeline.stamps")
            load_before = load_text()
            profiles = []
            before = process_cpu.snapshot(stack.proc.pid)
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                profiles = [(args.profile / f"{name.replace(' ', '-')}.txt", pid) for pid, (name, _) in before.items()
                            if name.endswith(" worker")]
                profiles = [(out, py_spy_profile.start(pid, args.seconds, out)) for out, pid in profiles]
            own_before, machine_before, began = sum(os.times()[:2]), process_cpu.machine_busy(), time.monotonic()
            due = send_open_loop(stack, keys, args.rate, args.seconds)
            seconds = time.monotonic() - began
            spent = process_cpu.by_role(before, process_cpu.snapshot(stack.proc.pid))
            machine_after = process_cpu.machine_busy()
            own = sum(os.times()[:2]) - own_before
            wait_final(conn, list(due), timeout=180)
            # Until every report is final: what the reports cost, whatever the machine's other load.
            spent_all = process_cpu.by_role(before, process_cpu.snapshot(stack.proc.pid))
            stamps = Stamps(conn.execute(STAMPS_SQL).fetchall(), conn.execute(SENT_AT_SQL).fetchall())
    points = timelines(stamps, due)
    print(f"\n{len(points)} reports at {args.rate:g}/s for {args.seconds:g} s; load average {load_before} before,"
          f" {load_text()} after")
    print_hops(points)
    print_batches(stamps)
    print_cpu(spent, own, seconds, (machine_after[0] - machine_before[0], machine_after[1] - machine_before[1]))
    print_cpu_per_report(spent_all, own, len(due), args.rate)
    for out, proc in profiles:
        proc.wait(timeout=60)
        if out.exists():
            print(f"\nprofile {out}:\n{py_spy_profile.summarise(out, top=10)}")
    print_slowest(points, args.slowest)


if __name__ == "__main__":
    main()
