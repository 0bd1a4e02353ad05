"""A/B rounds for the component benches that compare variants on a shared machine: the
variants' order reversed every other round (so a load that comes and goes weighs on each
alike), one row per round as it is measured, and each variant's medians at the end."""
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence


class RoundTable:
    """`columns`: (row key, title, format) in print order."""

    def __init__(self, columns: Sequence[tuple[str, str, str]], name_width: int, gap: str = " "):
        self.columns = list(columns)
        self.name_width = name_width
        self.gap = gap

    def header(self) -> str:
        return f"{'':<{self.name_width}}" + self.gap.join(
            f"{title:>{len(fmt.format(0))}}" for _, title, fmt in self.columns)

    def row(self, label: str, values: dict) -> str:
        return f"{label:<{self.name_width}}" + self.gap.join(fmt.format(values[key]) for key, _, fmt in self.columns)

    def run(self, names: Sequence[str], rounds: int, measure: Callable[[str], dict],
            label: Callable[[int, str], str]) -> dict[str, list[dict]]:
        """Measure every variant each round (A B, then B A, ...), printing each row; then the
        medians. Returns the rows by variant."""
        results: dict[str, list[dict]] = {name: [] for name in names}
        print(self.header(), flush=True)
        for round_no in range(rounds):
            for name in (names if round_no % 2 == 0 else list(names)[::-1]):
                results[name].append(measure(name))
                print(self.row(label(round_no + 1, name), results[name][-1]), flush=True)
        print(self.header(), flush=True)
        for name in names:
            medians = {key: statistics.median(r[key] for r in results[name]) for key, _, _ in self.columns}
            print(self.row(f"median {name}", medians), flush=True)
        return results
