"""What the stack's processes cost in CPU, idle and at several offered rates (issue 15).

    .venv/bin/python tests/bench/cpu_by_rate.py [--rates 25,100,150] [--seconds 15] [--slots 500]

Not a test (pytest does not collect this file). It starts its own stack (running_stack, no
stamping triggers: only what make bench runs), warms it up with 20 s at 100 reports/s, then
measures 10 s idle and each rate in turn (open loop, make bench's reports: urgent, specialist
and self care 3:3:4, tests/bench/pipeline/load.py), each over its load and 2 s after it, and
prints CPU per process role: cores, and ms per report. Beside the stack it prints the whole
machine's busy cores (the load generator and the kernel's loopback networking are the
difference).

What it shows: whether the stack's CPU follows the work (ms per report flat across rates) or
is a fixed cost per cycle that batching only amortises at high rates (ms per report falling
with the rate); which process pays at each rate.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.bench import process_cpu  # noqa: E402
from tests.bench.latency_timeline import KIOSKS, send_open_loop  # noqa: E402
from tests.bench.pipeline.seed import add_provider_with_slots  # noqa: E402
from tests.live_stack import running_stack  # noqa: E402

WARM_UP = (100.0, 20.0)  # rate, seconds: JIT, connections, first fetches
IDLE_S = 10.0
SETTLE_S = 2.0  # after each load, so that its last reports' work is counted with it
SHOWN = 9       # roles printed per rate, the costliest first


def measure(stack, keys: list[str], rate: float, seconds: float) -> tuple[dict[str, float], float, float]:
    """(CPU s per role, machine busy s, elapsed s) over a load at `rate` (0: idle)."""
    before, machine_before, began = process_cpu.snapshot(stack.proc.pid), process_cpu.machine_busy(), time.monotonic()
    if rate:
        send_open_loop(stack, keys, rate, seconds)
        time.sleep(SETTLE_S)
    else:
        time.sleep(IDLE_S)
    spent = process_cpu.by_role(before, process_cpu.snapshot(stack.proc.pid))
    return spent, process_cpu.machine_busy()[0] - machine_before[0], time.monotonic() - began


def print_rate(rate: float, seconds: float, spent: dict[str, float], machine: float, elapsed: float) -> None:
    reports = rate * seconds
    total = sum(spent.values())
    per_report = f", {1000 * total / reports:.1f} ms per report" if reports else ""
    print(f"\n{'idle' if not rate else f'{rate:g} reports/s'} ({elapsed:.1f} s): stack {total / elapsed:.2f} cores,"
          f" machine {machine / elapsed:.2f}{per_report}")
    for name, cpu in sorted(spent.items(), key=lambda kv: -kv[1])[:SHOWN]:
        ms = f"  {1000 * cpu / reports:6.2f} ms/report" if reports else ""
        print(f"  {name:<24}{cpu / elapsed:6.3f} cores{ms}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="25,100,150", help="offered rates, reports per second, in order")
    parser.add_argument("--seconds", type=float, default=15.0, help="load per rate")
    parser.add_argument("--slots", type=int, default=500, help="free slots seeded first (as make bench does)")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    with running_stack(prefix="cpu-by-rate-") as stack:
        add_provider_with_slots(stack, args.slots)
        keys = [stack.kiosk_key(f"cpu-kiosk-{n}") for n in range(KIOSKS)]
        send_open_loop(stack, keys, *WARM_UP)
        time.sleep(5)
        for rate in [0.0, *rates]:
            print_rate(rate, args.seconds, *measure(stack, keys, rate, args.seconds))


if __name__ == "__main__":
    main()
