"""docs/bench/latency.png: p50 and p99 against offered load, the stack's POST-to-final
latency beside the bare endpoint's POST latency (the ceiling), and the stack's own POST;
the three-broker stack's POST-to-final at the loads it was measured at, as points."""
from __future__ import annotations

from pathlib import Path

from .stats import LoadPoint


def draw(points: list[LoadPoint], path: Path, title: str, half_sustained: float) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    from matplotlib import pyplot

    cluster = [p for p in points if p.brokers != 1]
    points = [p for p in points if p.brokers == 1]
    loads = [p.offered for p in points]
    figure, axes = pyplot.subplots(figsize=(8, 5), dpi=110)
    series = [("stack: POST -> final status", "tab:red", lambda p: p.stack_final_ms),
              ("stack: POST answered", "tab:orange", lambda p: p.stack_post_ms),
              ("ceiling: bare endpoint POST", "tab:blue", lambda p: p.ceiling_post_ms)]
    for label, colour, pick in series:
        axes.plot(loads, [pick(p)[0] for p in points], "o-", color=colour, label=f"{label}, p50")
        axes.plot(loads, [pick(p)[2] for p in points], "s--", color=colour, label=f"{label}, p99")
    if cluster:
        axes.plot([p.offered for p in cluster], [p.stack_final_ms[0] for p in cluster], "D", color="tab:purple",
                  label=f"{cluster[0].brokers} brokers: POST -> final status, p50")
        axes.plot([p.offered for p in cluster], [p.stack_final_ms[2] for p in cluster], "x", color="tab:purple",
                  label=f"{cluster[0].brokers} brokers: POST -> final status, p99")
    # The goal at half the sustained maximum: p50 <= 50 ms, p99 <= 250 ms.
    axes.axhline(50, color="grey", linestyle=":", linewidth=1)
    axes.axhline(250, color="grey", linestyle="-.", linewidth=1)
    axes.axvline(half_sustained, color="grey", linestyle=":", linewidth=1)
    axes.annotate("goal p50 50 ms", (loads[0], 50), fontsize=7, color="grey", va="bottom")
    axes.annotate("goal p99 250 ms", (loads[0], 250), fontsize=7, color="grey", va="bottom")
    axes.annotate(" half the sustained max", (half_sustained, axes.get_ylim()[0]), fontsize=7, color="grey",
                  rotation=90, va="bottom")
    axes.set_xlabel("offered load (reports/s, open loop)")
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    pyplot.close(figure)
