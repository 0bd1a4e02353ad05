"""CPU time of a process tree, by role, between two snapshots (for benchmarks: is the machine
saturated, and by whom?). Reads /proc; Linux only. Not a test."""
from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds user + system) of `pid`, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) * TICK_S


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, its threads included."""
    stat = _stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def role(cmdline: str) -> str:
    """What a process of the stack is, from its command line."""
    if m := re.search(r"clinic worker (\w+)", cmdline):
        return f"{m.group(1)} worker"
    if m := re.search(r"services\.(\w+)\.app", cmdline):
        return f"{m.group(1)} api"
    if m := re.match(r"postgres: (\w+) ", cmdline):  # a backend: "postgres: <user> <db> ..."
        return f"postgres ({m.group(1)})"
    if cmdline.startswith("postgres") or "/postgres " in cmdline:
        return "postgres (other)"  # the postmaster, WAL writer, checkpointer...
    if "kafka.Kafka" in cmdline:
        return "kafka"
    return "other"


def tree(root: int) -> list[int]:
    """`root` and every process under it, as they are now."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            children[stat[0]].append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def snapshot(root: int) -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds so far), for the tree under `root`."""
    out = {}
    for pid in tree(root):
        stat = _stat(pid)
        if stat is not None:
            out[pid] = (role(_cmdline(pid)), stat[1])
    return out


def by_role(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds spent between the snapshots, summed per role (a process started in between
    counts from zero; one that ended in between is lost)."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in after.items():
        spent[name] += seconds - before.get(pid, (name, 0.0))[1]
    return dict(spent)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over its cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) * TICK_S, sum(fields[:8]) * TICK_S
