"""Wall-clock profiles of running processes with py-spy (idle threads included, so that a
thread's waits show as well as its work), and a short summary of where each thread's time
went. For benchmarks; not a test.

    .venv/bin/python tests/bench/py_spy_profile.py FILE.txt [--top 12]   # summarise a profile
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: --profile needs it (not a pinned dependency: install it to profile)")
    return found


def start(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen:
    """Sample `pid` for `seconds` into `out` (collapsed stacks, one line per distinct stack with
    its count, threads first). --nonblocking: the process is not paused to be sampled."""
    return subprocess.Popen(
        [py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", str(rate),
         "--idle", "--threads", "--nonblocking", "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _short(frame: str) -> str:
    """'fn (path/to/module.py:12)' -> 'fn (module.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def summarise(path: Path, top: int = 12, depth: int = 4) -> str:
    """Per thread: its samples, and the `top` commonest innermost `depth` frames (as % of the
    thread's samples) with the outermost frame of the project's own code above them."""
    per_thread: dict[str, Counter] = defaultdict(Counter)
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        if not frames:  # py-spy's nonblocking read of a thread that had no Python frame then
            continue
        own = [f for f in frames if " (services/" in f]
        anchor = _short(own[-1]) if own else ""
        leaf = " < ".join(_short(f) for f in reversed(frames[-depth:]))
        per_thread[thread][f"{leaf}   [in {anchor}]" if anchor else leaf] += int(count)
    lines = []
    for thread, stacks in sorted(per_thread.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(stacks.values())
        lines.append(f"{thread}: {total} samples")
        for stack, count in stacks.most_common(top):
            lines.append(f"  {100 * count / total:5.1f}%  {stack}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    print(summarise(args.profile, args.top, args.depth))


if __name__ == "__main__":
    main()
