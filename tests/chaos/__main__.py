"""`python -m tests.chaos [--reports N] [--minutes M] [--rate R]`: the full fault suite
(`make chaos`) against a fresh stack started as `make run` starts it.

The load runs until N reports have been sent or M minutes have passed, whichever comes
first; the faults (every one of them, in turn, again and again) run meanwhile. Prints the
per-fault table; exit code 0 when nothing acknowledged was lost or doubled.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    profile = SHORT if args.short else full_profile(args.reports, args.minutes, args.rate, args.threads)
    with running_stack(keep=args.keep) as stack:
        result = run_suite(stack, profile)
    print(result.text, flush=True)
    if args.out:
        dump_json(result, args.out)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
