"""tests/bench/latency_timeline.py's reading of its stamps (the database work is the bench's):
a report's path split into hops, a busy relay or consumer counted as a wait of its own, and
process roles for its CPU table."""
from __future__ import annotations

import pytest

from tests.bench import latency_timeline as lt
from tests.bench.process_cpu import role

REPORT = "r1"


def stamps_of(rows, sent_at) -> lt.Stamps:
    """rows: (ms, xid, schema, what, event_id, report_id); times in ms from 0."""
    return lt.Stamps([(ms / 1000, xid, s, what, e, r) for ms, xid, s, what, e, r in rows],
                     [(s, e, ms / 1000) for s, e, ms in sent_at])


def test_a_referred_report_splits_into_its_hops_with_the_waits_where_a_stage_was_busy():
    rows = [
        # the POST's transaction (xid 10) writes intake's event e1
        (5, 10, "intake", "outbox", "e1", REPORT), (6, 10, "intake", "outbox commit", "e1", REPORT),
        # the intake relay was busy with batch xid 11 (another report's) until 9
        (2, 11, "intake", "outbox", "e0", "r0"), (9, 11, "intake", "acked", "e0", "r0"),
        (15, 12, "intake", "acked", "e1", REPORT),
        # triage's consumer: its transaction xid 20 (another event) committed at 18, then xid 21 takes e1
        (16, 20, "triage", "inbox", "x", None), (18, 20, "triage", "inbox commit", "x", None),
        (20, 21, "triage", "inbox", "e1", None), (21, 21, "triage", "outbox", "e2", REPORT),
        (23, 21, "triage", "inbox commit", "e1", None),
        (30, 22, "triage", "acked", "e2", REPORT),
        (33, 30, "referral", "inbox", "e2", None), (36, 30, "referral", "outbox", "e3", REPORT),
        (37, 30, "referral", "outbox commit", "e3", REPORT),
        (45, 31, "referral", "acked", "e3", REPORT),
        (47, 40, "intake", "inbox", "e3", None), (48, 40, "intake", "final", None, REPORT),
        (50, 40, "intake", "inbox commit", "e3", None),
    ]
    sent_at = [("intake", "e0", 3), ("intake", "e1", 10), ("triage", "e2", 25), ("referral", "e3", 39)]
    points = lt.timelines(stamps_of(rows, sent_at), {REPORT: 0.0})
    hops = {name: round(ms, 3) for name, ms in lt.hops(points[REPORT]).items()}
    assert hops == {
        "api": 5, "intake commit": 1, "intake relay wait": 3, "intake relay wake": 1, "intake publish": 5,
        "intake->triage busy": 3, "intake->triage kafka": 2, "triage handle": 1, "triage commit": 2,
        "triage relay wake": 2, "triage publish": 5, "triage->referral kafka": 3, "referral handle": 3,
        "referral commit": 1, "referral relay wake": 2, "referral publish": 6, "referral->intake kafka": 2,
        "intake apply": 1, "final commit": 2, "TOTAL post->final": 50}


def test_a_self_care_report_goes_from_triage_straight_to_intake():
    rows = [(1, 10, "intake", "outbox", "e1", REPORT), (1, 10, "intake", "outbox commit", "e1", REPORT),
            (3, 11, "intake", "acked", "e1", REPORT),
            (4, 20, "triage", "inbox", "e1", None), (5, 20, "triage", "outbox", "e2", REPORT),
            (6, 20, "triage", "inbox commit", "e1", None), (8, 21, "triage", "acked", "e2", REPORT),
            (9, 40, "intake", "inbox", "e2", None), (10, 40, "intake", "final", None, REPORT),
            (11, 40, "intake", "final commit", None, REPORT)]
    sent_at = [("intake", "e1", 2), ("triage", "e2", 7)]
    hops = lt.hops(lt.timelines(stamps_of(rows, sent_at), {REPORT: 0.0})[REPORT])
    assert list(hops) == ["api", "intake commit", "intake relay wake", "intake publish", "intake->triage kafka",
                          "triage handle", "triage commit", "triage relay wake", "triage publish",
                          "triage->intake kafka", "intake apply", "final commit", "TOTAL post->final"]
    assert hops["TOTAL post->final"] == pytest.approx(11)


def test_batches_are_told_by_transaction():
    rows = [(1, 7, "triage", "inbox", "a", None), (1, 7, "triage", "inbox", "b", None),
            (4, 7, "triage", "inbox commit", "a", None), (9, 8, "triage", "inbox", "c", None),
            (12, 8, "triage", "inbox commit", "c", None)]
    txs = lt.Stamps([(ms / 1000, *rest) for ms, *rest in rows], []).consumer_transactions("triage")
    assert {x: (round(s * 1000), round(c * 1000), n) for x, (s, c, n) in txs.items()} == {7: (1, 4, 2), 8: (9, 12, 1)}


@pytest.mark.parametrize("cmdline, expected", [
    ("/v/bin/python /v/bin/clinic worker referral", "referral worker"),
    ("/v/bin/python -m gunicorn --config python:x services.intake.app:create_app()", "intake api"),
    ("postgres: triage clinic 127.0.0.1(5000) idle", "postgres (triage)"),
    ("/usr/lib/postgresql/15/bin/postgres -D /tmp/pg", "postgres (other)"),
    ("/usr/bin/java -Xmx512m kafka.Kafka server.properties", "kafka"),
    ("/v/bin/python -m infra.stack", "other")])
def test_process_roles(cmdline, expected):
    assert role(cmdline) == expected
