"""The benchmark's own section of docs/measurements.md, between two markers: replaced on
each run, the rest of the file kept as it is."""
from __future__ import annotations

from pathlib import Path

BEGIN = "<!-- pipeline-bench:begin (written by `make bench`; edits here are overwritten) -->"
END = "<!-- pipeline-bench:end -->"
HEADING = "## Pipeline benchmark (make bench)"


def replace_section(text: str, body: str) -> str:
    section = f"{BEGIN}\n{HEADING}\n\n{body.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return f"{head}{section}{tail}"
    return f"{text.rstrip()}\n\n{section}\n"  # first run: at the end of the file


def write_section(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else "# Measurements\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(text, body))
