"""Triage engine throughput, next to a bare JSON round trip of the same reports.

    .venv/bin/python tests/bench/bench_triage_engine.py [--reports 20000] [--seed 7]

Not a test (pytest does not collect bench_*.py). The JSON round trip is the
ceiling comparison: a worker must at least (de)serialise each report, so the
ratio shows what the engine costs on top of that.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import date, timedelta

from services.triage.domain import decide, default_rules_path, load_rules

TODAY = date(2026, 11, 26)
LOCATIONS = ["groin", "inner_hip", "outer_hip", "upper_thigh", "buttock"]
MEASURES = ["rest", "activity_reduction", "ice", "stretching", "strengthening"]


def random_report(rng: random.Random) -> dict:
    measures = rng.sample(MEASURES, rng.randint(0, 3))
    return {
        "patient": {"mrn": f"MRN-{rng.randint(1, 9999):04d}", "given_name": "Ana", "family_name": "Silva",
                    "birth_date": "1991-04-02", "phone": "+15550100"},
        "activity": {"sport": rng.choice(["running", "cycling", "football", "swimming"]),
                     "high_impact": rng.random() < 0.6},
        "pain": {"locations": rng.sample(LOCATIONS, rng.randint(1, 3)),
                 "side": rng.choice(["left", "right", "both"]),
                 "severity": rng.randint(0, 10),
                 "onset": rng.choice(["sudden", "gradual", "gradual"]),
                 "started_on": (TODAY - timedelta(days=rng.randint(-1, 120))).isoformat(),
                 "direct_trauma": rng.choice([False, False, False, True, None])},
        "function": {key: rng.choice([False, False, False, False, True, None])
                     for key in ("joint_locking", "instability", "persistent_dysfunction")},
        "home_care": ({"measures": measures, "days": rng.randint(0, 60), "improving": rng.choice(["yes", "no"])}
                      if measures else {"measures": [], "days": 0, "improving": "not_tried"}),
    }


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds; best of each is shown")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    reports = [random_report(rng) for _ in range(args.reports)]
    load_seconds = timed(lambda: load_rules(default_rules_path()))
    rules = load_rules(default_rules_path())

    # Interleaved rounds, so a busy machine slows all three alike; best of each is reported.
    workloads = {
        "engine": lambda: [decide(report, rules, TODAY) for report in reports],
        "engine_and_dict": lambda: [decide(report, rules, TODAY).to_dict() for report in reports],
        "json": lambda: [json.loads(json.dumps(report)) for report in reports],
    }
    rounds = [{name: timed(work) for name, work in workloads.items()} for _ in range(args.repeat)]
    engine, engine_and_dict, json_round_trip = (min(r[name] for r in rounds) for name in workloads)
    ratio_per_round = statistics.median(r["engine"] / r["json"] for r in rounds)

    levels: dict[str, int] = {}
    for report in reports:
        level = decide(report, rules, TODAY).care_level
        levels[level] = levels.get(level, 0) + 1

    n = len(reports)
    print(f"reports: {n}  (best of {args.repeat}; rule file loaded in {load_seconds * 1000:.1f} ms)")
    print(f"levels: {', '.join(f'{level} {count}' for level, count in sorted(levels.items()))}")
    print(f"decide():                  {engine:.3f} s  {n / engine:>10,.0f} decisions/s  "
          f"{engine / n * 1e6:6.1f} us each")
    print(f"decide() + to_dict():      {engine_and_dict:.3f} s  {n / engine_and_dict:>10,.0f} decisions/s  "
          f"{engine_and_dict / n * 1e6:6.1f} us each")
    print(f"json.loads(json.dumps()):  {json_round_trip:.3f} s  {n / json_round_trip:>10,.0f} round trips/s  "
          f"{json_round_trip / n * 1e6:6.1f} us each")
    print(f"engine cost = {engine / json_round_trip:.2f}x a bare JSON round trip of the same report "
          f"(median of per-round ratios: {ratio_per_round:.2f}x)")


if __name__ == "__main__":
    main()
