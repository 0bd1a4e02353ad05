"""The faults of a three-broker cluster (CLINIC_KAFKA_BROKERS=3), under load.

- the partition leaders' broker SIGKILLed (the node leading most partitions), its port held
  until every partition has a leader again among the two left;
- a rolling restart: each broker in turn stopped (SIGTERM, a controlled shutdown), restarted
  by the supervisor and back in every in-sync replica set before the next one goes;
- one broker held down (killed, its port held) for a while.

Each measures what ops would ask: the time for partitions to get new leaders, the intake
outbox's peak of unsent events, how many reports were acknowledged while a broker was down,
and report-to-final (p50/p99, from the report's `submitted_at` to its final status in the
database) of the reports first sent while it was down. Nothing may be lost or doubled (the
suite's checker), and reports must keep reaching their final status while a broker is down.
"""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import psycopg

from services.common.settings import TOPICS, dlq_topic

from . import kafka_probe
from .faults import Ctx, Phase, _wait_drained, canary, kill_and_hold, report_to_final, wait_until, wait_whole
from .procs import Proc

CLUSTER_TOPICS = [t for topic in TOPICS for t in (topic, dlq_topic(topic))]


# -- what the cluster says --------------------------------------------------------------------
def node_of(proc: Proc) -> int:
    """A broker's node id, from its properties file (<state>/kafka-<n>/server.properties)."""
    match = re.search(r"kafka-(\d+)", proc.argv[-1])
    return int(match.group(1)) if match else 1


def broker(ctx: Ctx, node: int) -> Proc | None:
    return next((p for p in ctx.procs.snapshot()["kafka"] if node_of(p) == node), None)


def longest_up(ctx: Ctx) -> int:
    """The node whose broker has run longest: its supervisor backoff is reset (after 60 s up),
    so the time it is down is the fault's, not the backoff of a node killed just before."""
    def started(proc: Proc) -> int:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])  # field 22, starttime
    return node_of(min(ctx.procs.snapshot()["kafka"], key=started))


def node_address(ctx: Ctx, node: int) -> str:
    return ctx.bootstrap.split(",")[node - 1]  # node n listens on the first port + 2(n-1)


def partitions(bootstrap: str) -> dict[tuple[str, int], tuple[int, int, int]]:
    """(topic, partition) -> (leader, in-sync replicas, replicas) of the clinic's topics."""
    with kafka_probe.admin(bootstrap, timeout_ms=3000) as client:
        described = client.describe_topics(CLUSTER_TOPICS)
    return {(t["name"], p["partition_index"]): (p["leader_id"], len(p["isr_nodes"]), len(p["replica_nodes"]))
            for t in described for p in t["partitions"]}


def leaders_count(bootstrap: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for leader, _isr, _replicas in partitions(bootstrap).values():
        counts[leader] = counts.get(leader, 0) + 1
    return counts


def fully_replicated(bootstrap: str) -> bool:
    parts = partitions(bootstrap)
    return bool(parts) and all(leader >= 0 and isr == replicas for leader, isr, replicas in parts.values())


def led_elsewhere(bootstrap: str, dead: int) -> bool:
    """Every partition has a live leader (not the dead node, not none)."""
    parts = partitions(bootstrap)
    return bool(parts) and all(leader not in (dead, -1) for leader, _isr, _replicas in parts.values())


def listening(ctx: Ctx, node: int) -> bool:
    """The node's broker port accepts connections (a restarted JVM, the port holder gone)."""
    return kafka_probe._port_open(node_address(ctx, node))


def _intake_unsent(conn) -> int:
    return conn.execute("SELECT count(*) FROM intake.outbox WHERE sent_at IS NULL").fetchone()[0]


# -- one broker down -------------------------------------------------------------------------
def _broker_outage(ctx: Ctx, phase: Phase, node: int, hold_s: float) -> None:
    """SIGKILL node `node`, hold its port for `hold_s` (at least until its partitions have new
    leaders), let the supervisor restart it, wait until it is back in every ISR; measured."""
    before = kafka_probe.committed_offsets(ctx.bootstrap)
    port = int(node_address(ctx, node).rsplit(":", 1)[1])
    victim = broker(ctx, node)
    led = leaders_count(ctx.bootstrap).get(node, 0)
    t0, wall0 = time.monotonic(), time.time()
    holder = kill_and_hold(ctx, "kafka", port, victim=victim)
    phase.killed.append("kafka" if node == 1 else f"kafka-{node}")
    new_leaders_s = None
    max_unsent = 0
    with ctx.driver.unthrottled(), psycopg.connect(ctx.admin_url, autocommit=True) as conn:
        while True:
            elapsed = time.monotonic() - t0
            max_unsent = max(max_unsent, _intake_unsent(conn))
            if new_leaders_s is None:
                try:
                    if led_elsewhere(ctx.bootstrap, node):
                        new_leaders_s = time.monotonic() - t0
                except Exception:  # the admin client meeting the dead broker; asked again
                    pass
            if new_leaders_s is not None and elapsed >= hold_s:
                break
            if elapsed > max(hold_s, ctx.recover_timeout):
                phase.failures.append(f"partitions led by node {node} got no new leader in {elapsed:.0f}s")
                break
            time.sleep(0.2)
    holder.release()
    wait_until(f"broker {node} to listen again", lambda: listening(ctx, node), ctx.recover_timeout, 0.2)
    t_back = time.monotonic()
    wait_until(f"broker {node} back in every in-sync replica set", lambda: fully_replicated(ctx.bootstrap),
               ctx.recover_timeout, 0.5)
    t_isr = time.monotonic()
    wall_back = time.time()  # back in service: the window of "while it was down" ends here
    acked_during = sum(1 for s in list(ctx.driver.submissions) if s.acked_at and wall0 <= s.acked_at <= wall_back)
    sent, p50, p99, final_during = report_to_final(ctx, wall0, wall_back, ctx.recover_timeout, phase.details)
    phase.figures.update({"down": f"{t_isr - t0:.1f}s", "new leaders in": f"{_s(new_leaders_s)} ({led} led)",
                          "acked while down": str(acked_during), "outbox peak": str(max_unsent),
                          "final p50 / p99": f"{p50:.1f}s / {p99:.1f}s" if sent else "-",
                          "final while down": f"{final_during}/{sent}"})
    phase.details.append(f"node {node} SIGKILLed and held down {t_back - t0:.1f}s (port held {hold_s:g}s, then the "
                         f"supervisor's restart); the {led} partitions it led had new leaders {_s(new_leaders_s)} after the kill; "
                         f"back in every ISR {t_isr - t_back:.1f}s after it listened again")
    phase.details.append(f"{acked_during} reports acknowledged while it was down, intake outbox peak {max_unsent} "
                         f"unsent; of the {sent} sent meanwhile {final_during} were final before it was back, "
                         f"report-to-final p50 {p50:.1f}s, p99 {p99:.1f}s")
    if acked_during == 0:
        phase.failures.append(f"no report was acknowledged while node {node} was down")
    if sent and final_during == 0:
        phase.failures.append(f"no report reached its final status while node {node} was down "
                              f"({t_back - t0:.0f}s): the pipeline stopped")
    wait_whole(ctx)
    phase.recover_s = time.monotonic() - t0
    _check_offsets(ctx, phase, before)
    phase.canary_s = canary(ctx)


def _check_offsets(ctx: Ctx, phase: Phase, before) -> None:
    after = kafka_probe.committed_offsets(ctx.bootstrap)
    regressed = [(g, tp, offset, after.get(g, {}).get(tp)) for g, offsets in before.items()
                 for tp, offset in offsets.items() if after.get(g, {}).get(tp, -1) < offset]
    if regressed:
        phase.failures.append(f"committed offsets went back: {regressed[:3]}")


def _s(seconds: float | None) -> str:
    return f"{seconds:.1f}s" if seconds is not None else "never"


def leader_kill(ctx: Ctx, hold_s: float) -> Phase:
    """SIGKILL the broker leading most of the clinic's partitions."""
    counts = leaders_count(ctx.bootstrap)
    node = max((n for n in counts if n > 0), key=lambda n: counts[n])
    phase = Phase(f"leaders' broker (node {node}) SIGKILL")
    phase.details.append(f"leaders before: {dict(sorted(counts.items()))} (node: partitions led)")
    _broker_outage(ctx, phase, node, hold_s)
    return phase


def broker_held_down(ctx: Ctx, seconds: float) -> Phase:
    node = longest_up(ctx)
    phase = Phase(f"broker node {node} down {seconds:g}s")
    _broker_outage(ctx, phase, node, seconds)
    return phase


def rolling_restart(ctx: Ctx) -> Phase:
    """Each broker in turn: SIGTERM (a controlled shutdown hands its leaderships over first),
    the supervisor starts it again, and the next goes only once it is back in every ISR."""
    phase = Phase("rolling restart of the 3 brokers")
    before = kafka_probe.committed_offsets(ctx.bootstrap)
    t0, wall0 = time.monotonic(), time.time()
    max_unsent = 0
    steps = []
    with ctx.driver.unthrottled(), psycopg.connect(ctx.admin_url, autocommit=True) as conn:
        for node in (1, 2, 3):
            victim = broker(ctx, node)
            if victim is None:
                raise AssertionError(f"no broker node {node} to restart")
            started = time.monotonic()
            os.kill(victim.pid, signal.SIGTERM)

            def back_and_in_sync():
                nonlocal max_unsent
                max_unsent = max(max_unsent, _intake_unsent(conn))
                current = broker(ctx, node)
                return (current is not None and current.pid != victim.pid
                        and listening(ctx, node) and fully_replicated(ctx.bootstrap))

            wait_until(f"broker {node} restarted and back in every ISR", back_and_in_sync, ctx.recover_timeout, 0.5)
            steps.append(f"node {node} {time.monotonic() - started:.1f}s")
    wall1 = time.time()
    acked = sum(1 for s in list(ctx.driver.submissions) if s.acked_at and wall0 <= s.acked_at <= wall1)
    sent, p50, p99, final_during = report_to_final(ctx, wall0, wall1, ctx.recover_timeout, phase.details)
    phase.figures.update({"down": f"{time.monotonic() - t0:.0f}s, 3 in turn", "acked while down": str(acked),
                          "outbox peak": str(max_unsent),
                          "final p50 / p99": f"{p50:.1f}s / {p99:.1f}s" if sent else "-",
                          "final while down": f"{final_during}/{sent}"})
    phase.details.append(f"SIGTERM, restart, back in every ISR: {', '.join(steps)}; {acked} reports acknowledged "
                         f"meanwhile, intake outbox peak {max_unsent}; report-to-final p50 {p50:.1f}s, p99 {p99:.1f}s "
                         f"({final_during}/{sent} final before the last broker was back)")
    if sent and final_during == 0:
        phase.failures.append("no report reached its final status during the rolling restart")
    wait_whole(ctx)
    phase.recover_s = time.monotonic() - t0
    _check_offsets(ctx, phase, before)
    ctx.driver.pause()
    try:
        _wait_drained(ctx)
    finally:
        ctx.driver.resume()
    phase.canary_s = canary(ctx)
    return phase
