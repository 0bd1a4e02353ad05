"""`python -m tests.chaos [--reports N] [--minutes M] [--rate R]`: the full fault suite
(`make chaos`) against a fresh stack started as `make run` starts it.

The load runs until N reports have been sent or M minutes have passed, whichever comes
first; the faults (every one of them, in turn, again and again) run meanwhile. Prints the
per-fault table; exit code 0 when nothing acknowledged was lost or doubled.

Two passes by default: one broker, then a three-broker cluster (its own fresh stack, the same
limits, the single-broker faults and the cluster's: docs/kafka-cluster.md), then the broker
faults' figures of both side by side. `--brokers 1` or `--brokers 3` (or CLINIC_KAFKA_BROKERS)
runs one pass.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import report
from .scenario import SHORT, dump_json, full_profile, run_suite
from .stack import running_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=100_000, help="stop the load after this many reports")
    parser.add_argument("--minutes", type=float, default=30.0, help="... or after this many minutes")
    parser.add_argument("--rate", type=float, default=60.0, help="target reports per second (held back "
                        "while the pipeline is more than a minute behind)")
    parser.add_argument("--threads", type=int, default=24, help="kiosk client threads")
    parser.add_argument("--short", action="store_true", help="the short variant (as in make test)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's state folder (logs) afterwards")
    parser.add_argument("--brokers", default=os.environ.get("CLINIC_KAFKA_BROKERS") or "1,3",
                        help="one pass per broker count, in turn (default: CLINIC_KAFKA_BROKERS, else 1,3)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here (with several passes: "
                        "<name>-<n>brokers.json)")
    args = parser.parse_args(argv)
    passes = [int(n) for n in str(args.brokers).split(",")]
    if any(n not in (1, 3) for n in passes):
        parser.error(f"--brokers: 1, 3 or 1,3, not {args.brokers!r}")
    profile = SHORT if args.short else full_profile(args.reports, args.minutes, args.rate, args.threads)
    results = []
    for brokers in passes:
        with running_stack(keep=args.keep, brokers=brokers) as stack:
            result = run_suite(stack, profile)
        print(f"\n== {brokers} broker(s) ==\n{result.text}", flush=True)
        results.append((brokers, result))
        if args.out:
            dump_json(result, args.out if len(passes) == 1 else
                      args.out.with_name(f"{args.out.stem}-{brokers}brokers{args.out.suffix}"))
    if len(results) > 1:
        table = report.broker_table([(f"{n} broker{'s' * (n > 1)}: {phase.name}", phase)
                                     for n, result in results for phase in result.phases])
        print("\nBroker faults, one broker and three side by side\n" + "\n".join(table), flush=True)
    return 0 if all(result.ok for _n, result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
