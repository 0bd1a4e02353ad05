"""`make bench`'s harness runs end to end (python -m tests.bench.pipeline --quick, at tiny
sizes, on a stack of its own) and writes its table and picture where it is told. A test of
the harness, not of speed: no figure is compared with anything (issue 15)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.bench.pipeline import markdown_section
from tests.live_stack import REPO

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(900)
def test_the_pipeline_benchmark_writes_its_table_and_picture(tmp_path):
    markdown, png = tmp_path / "measurements.md", tmp_path / "bench" / "latency.png"
    markdown.write_text("# Measurements\n\n## Kept\nuntouched\n")
    plot = importlib.util.find_spec("matplotlib") is not None  # the bench extra; `make test` lacks it
    command = [sys.executable, "-m", "tests.bench.pipeline", "--quick", "--without-components",
               "--markdown", str(markdown), "--png", str(png), *([] if plot else ["--no-plot"])]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=840)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    assert "load average at start" in run.stdout and "at end" in run.stdout
    for measure in ("1. POST /v1/reports accepted/s", "2. burst of", "3. each service's drain",
                    "4. POST -> final status at 5/s", "on 3 brokers, RF 3, min ISR 2",
                    "4. POST -> final status at 5/s offered on 3 brokers"):
        assert measure in run.stdout
    written = markdown.read_text()
    assert written.startswith("# Measurements\n\n## Kept\nuntouched\n")
    assert written.count(markdown_section.HEADING) == 1 and "| measure | stack |" in written
    assert "not final" not in run.stdout, run.stdout  # every report seen reaching its final status
    if plot:
        assert png.read_bytes().startswith(b"\x89PNG")
