"""The one table: measure, stack, ceiling, ratio, goal; as text for the terminal and as
Markdown for docs/measurements.md."""
from __future__ import annotations

import math

from .stats import LoadPoint, Row

HEADER = ("measure", "stack", "ceiling (same run)", "ratio", "goal")


def figure(value: float | str | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "n/a"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{text} {unit}".rstrip()


def goal_text(row: Row) -> str:
    if not row.goal:
        return ""
    if row.goal_met is None:
        return row.goal
    return f"{row.goal}: {'met' if row.goal_met else 'not met'}"


def cells(row: Row) -> tuple[str, ...]:
    ratio = "-" if row.ratio is None or math.isnan(row.ratio) else \
        f"{row.ratio:.2g}x" if row.ratio < 0.1 else f"{row.ratio:,.2f}x"  # 0.0046x, not 0.00x
    return (row.measure, figure(row.stack, row.unit), figure(row.ceiling, row.unit), ratio, goal_text(row))


def as_text(rows: list[Row]) -> str:
    lines = [HEADER, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def as_markdown(rows: list[Row]) -> str:
    def line(values) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"
    return "\n".join([line(HEADER), line(["---"] * len(HEADER)), *(line(cells(r)) for r in rows)])


def triple(values: tuple[float, float, float]) -> str:
    return " / ".join(figure(v) for v in values)


def curve_markdown(points: list[LoadPoint]) -> str:
    """Every offered load of measure 4 (what the picture draws)."""
    lines = ["| offered load | brokers | stack POST -> final p50 / p90 / p99 ms | stack POST p50 / p90 / p99 ms"
             " | ceiling: bare POST p50 / p90 / p99 ms | reports (not final) |",
             "|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: (p.offered, p.brokers)):
        lines.append(f"| {p.offered:g}/s | {p.brokers} | {triple(p.stack_final_ms)} | {triple(p.stack_post_ms)} | "
                     f"{triple(p.ceiling_post_ms)} | {p.sent:,} ({p.not_final}) |")
    return "\n".join(lines)
