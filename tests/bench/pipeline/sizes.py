"""How much of each measure a run does: the issue's full sizes, or --quick's small ones."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    post_clients: int          # measure 1: keep-alive clients
    post_reports: int          # measure 1: reports posted by them
    burst_reports: int         # measure 2: the burst through the whole stack
    load_seconds: float        # measure 4: how long each offered load lasts
    load_fractions: tuple[float, ...]  # measure 4: offered loads past 5/s, as fractions of the sustained max
    slots: int                 # free slots seeded, so early urgent/specialist reports are booked
    settle_timeout: float      # how long to wait for a phase's reports to reach their final status
    drain_scale: float         # measure 3: multiplies bench_worker_drain's backlogs (20k/10k/20k events)

    @property
    def label(self) -> str:
        return (f"{self.post_reports:,} posts by {self.post_clients} clients; burst {self.burst_reports:,}; "
                f"{self.load_seconds:g} s per offered load")


FULL = Sizes(post_clients=16, post_reports=2000, burst_reports=3000, load_seconds=20.0,
             load_fractions=(0.25, 0.5, 0.75), slots=500, settle_timeout=600.0, drain_scale=1.0)

# Small enough to try the harness in about a minute after the stack is up; the figures mean little.
QUICK = Sizes(post_clients=4, post_reports=60, burst_reports=80, load_seconds=3.0,
              load_fractions=(0.5, 0.75), slots=20, settle_timeout=60.0, drain_scale=0.02)

FIRST_OFFERED_LOAD = 5.0  # reports/s: the lowest offered load
