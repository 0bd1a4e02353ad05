"""Percentiles and the rows of the one table the benchmark prints."""
from __future__ import annotations

from dataclasses import dataclass, field


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Row:
    """One line of the table. `stack` and `ceiling` are numbers (ratio = stack / ceiling)
    or text (figures that do not divide, e.g. three percentiles)."""
    measure: str
    stack: float | str | None
    ceiling: float | str | None
    unit: str = ""
    goal: str = ""
    goal_met: bool | None = None
    ratio: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.ratio is None and isinstance(self.stack, (int, float)) and isinstance(self.ceiling, (int, float)) \
                and self.ceiling:
            self.ratio = self.stack / self.ceiling


@dataclass
class LoadPoint:
    """One offered load of measure 4: the stack's POST-to-final latency, its POST latency,
    and the bare endpoint's POST latency at the same schedule (ms)."""
    offered: float
    stack_final_ms: tuple[float, float, float]    # p50, p90, p99
    stack_post_ms: tuple[float, float, float]
    ceiling_post_ms: tuple[float, float, float]
    sent: int
    not_final: int
    brokers: int = 1                              # the stack's Kafka: one broker, or the cluster of three


def p50_p90_p99(values_s: list[float]) -> tuple[float, float, float]:
    return tuple(percentile(values_s, q) * 1000 for q in (0.50, 0.90, 0.99))
