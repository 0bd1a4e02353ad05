"""The table: one row per fault (its reports are those first sent while it was in force)."""
from __future__ import annotations

from dataclasses import dataclass

from .checker import Verdict
from .faults import Phase
from .kafka_probe import CONSUMERS_OF


@dataclass
class Row:
    name: str
    sent: int = 0
    acked: int = 0
    lost: int = 0
    doubled: int = 0
    dead_lettered: int = 0
    retried: int = 0
    poison: str = ""
    recover: str = ""
    canary: str = ""


def rows(phases: list[Phase], verdict: Verdict, dead_letters) -> list[Row]:
    table = []
    firsts = [p for p in dead_letters if "dlq.replayed_from" not in p.headers]
    for i, phase in enumerate(phases):
        end = phase.ended if phase.ended is not None else float("inf")
        row = Row(phase.name)
        for v in verdict.reports:
            if phase.started <= v.sub.first_attempt < end:
                row.sent += 1
                row.acked += v.sub.acked
                row.lost += bool(v.lost)
                row.doubled += bool(v.doubled)
                row.dead_lettered += bool(v.dead_lettered)
                row.retried += v.sub.attempts > 1
        if phase.poisons:
            want = sum(len(CONSUMERS_OF[p.topic]) for p in phase.poisons)
            keys = {p.key for p in phase.poisons}
            got = sum(1 for p in firsts if p.key in keys)
            row.poison = f"{got}/{want}"
        row.recover = f"{phase.recover_s:.1f}s" if phase.recover_s is not None else "-"
        row.canary = f"{phase.canary_s:.1f}s" if phase.canary_s is not None else "-"
        table.append(row)
    total = Row("total", *(sum(getattr(r, f) for r in table) for f in
                           ("sent", "acked", "lost", "doubled", "dead_lettered", "retried")))
    table.append(total)
    return table


FIGURES = ("down", "new leaders in", "acked while down", "outbox peak", "final p50 / p99", "final while down")


def broker_table(labelled: list[tuple[str, Phase]]) -> list[str]:
    """The broker faults' figures, one row each (one broker's and the cluster's side by side when
    both ran): how long down, partitions' new leaders, reports acknowledged meanwhile, the intake
    outbox's peak, report-to-final of the reports sent meanwhile, how many of them were final
    before the broker was back."""
    rows = [(label, *(phase.figures.get(k, "-") for k in FIGURES)) for label, phase in labelled if phase.figures]
    if not rows:
        return []
    cells = [("broker fault", *FIGURES)] + rows
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(cells[0]))]

    def line(row):
        return "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))) + " |"

    return [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows]


def render(phases: list[Phase], verdict: Verdict, dead_letters, title: str) -> str:
    table = rows(phases, verdict, dead_letters)
    headers = ("fault", "sent", "acked", "lost", "doubled", "dead-lettered", "retried", "poison parked",
               "recovered in", "then a new report final in")
    cells = [headers] + [(r.name, r.sent, r.acked, r.lost, r.doubled, r.dead_lettered, r.retried, r.poison or "-",
                          r.recover or "-", r.canary or "-") for r in table]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(headers))]

    def line(row):
        return "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                 for i, (c, w) in enumerate(zip(row, widths))) + " |"

    out = [title,
           "(a fault's reports are those first sent while it was in force; recovered in: from the fault until every "
           "process is back, every API ready and every consumer group complete)",
           line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells[1:]]
    out.append("")
    brokers = broker_table([(phase.name, phase) for phase in phases])
    if brokers:
        out += ["Broker faults (report-to-final: of the reports first sent while a broker was down; final while down: "
                "how many of them were final before it was back)"] + brokers + [""]
    for phase in phases:
        for text in phase.details:
            out.append(f"- {phase.name}: {text}")
        for text in phase.failures:
            out.append(f"- {phase.name}: FAILED: {text}")
    for note in verdict.notes:
        out.append(f"- {note}")
    for problem in verdict.problems:
        out.append(f"- PROBLEM: {problem}")
    bad = [v for v in verdict.reports if v.lost or v.doubled or v.dead_lettered]
    for v in bad[:20]:
        out.append(f"- report {v.sub.report_id} (key {v.sub.key}, {v.expected_level}): "
                   f"lost={v.lost} doubled={v.doubled} dead-lettered={v.dead_lettered}")
    if len(bad) > 20:
        out.append(f"- ... and {len(bad) - 20} more")
    if verdict.unacked_stored:
        out.append(f"- {verdict.unacked_stored} report(s) stored though their kiosk gave up (not acknowledged)")
    return "\n".join(out)
