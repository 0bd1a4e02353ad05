"""schemathesis (the OpenAPI fuzzer, pinned in the test extra) with all of its checks against
each service served by a real gunicorn on the real database, authenticated with a credential
that may call every operation: every operation of each OpenAPI document, positive and negative
cases, a bounded number of examples per operation. 0 failures, 0 server errors.

The `st` command runs as a subprocess (its pytest plugin's lazy fixtures do not run under our
pytest 9); tests/fuzz_hooks.py only moves today-relative dates into today's window for
positive cases. The counts go to the terminal and docs/measurements.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.gunicorn_support import REPO, running_gunicorn
from tests.intake_support import new_kiosk, staff_headers
from tests.referral_support import add_slots, new_provider

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 20  # per operation and phase: about 15-35 s per service on the 2-core build machine
SEED = 20261201


# A request refused for its size is refused too: 413 (body over 64 KiB, e.g. a list of 500 slots
# with long times), 414 (request line over 4094 bytes) and 431 (a header over 8190 bytes) join
# the statuses schemathesis counts as rejecting invalid data. Its default list also accepts
# any 5xx as a "rejection"; ours does not (not_a_server_error fails those anyway).
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429", "431"]
"""


def run_schemathesis(url: str, auth: dict[str, str], report: Path, env: dict[str, str]) -> tuple[int, str, dict]:
    (header, value), = auth.items()
    config = report.with_name("schemathesis.toml")
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(config), "run", f"{url}/openapi.json",
        "--checks", "all", "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--header", f"{header}: {value}", "--workers", "1", "--no-color",
        "--phases", "examples,coverage,fuzzing,stateful",
        "--report", "json", "--report-json-path", str(report),
        "--output-sanitize", "true", "--request-timeout", "10",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks"})
    summary = json.loads(report.read_text()) if report.exists() else {}
    return done.returncode, done.stdout + done.stderr, summary


def credentials(service: str, settings) -> dict[str, str]:
    if service == "intake":
        return new_kiosk(settings).headers  # a kiosk: POST /v1/reports is kiosks' only
    return staff_headers(settings, "admin")  # admin may call every staff operation


@pytest.mark.parametrize("service", ["intake", "triage", "referral"])
def test_schemathesis_finds_nothing(service, request, stack_env, tmp_path, pytestconfig):
    settings = request.getfixturevalue(f"{service}_settings")
    env = {}
    if service == "referral":
        with psycopg_conn(settings) as conn:
            provider = new_provider(conn)
            env["FUZZ_PROVIDER_ID"] = str(provider["provider_id"])
            # Far from every other test's slots and windows (theirs are in the 2300s).
            start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=500)
            with conn.transaction():
                env["FUZZ_SLOT_ID"] = str(add_slots(conn, provider, [start], now=datetime.now(UTC))[0])
    with running_gunicorn(service, stack_env, tmp_path / "gunicorn.log") as url:
        code, output, summary = run_schemathesis(url, credentials(service, settings), tmp_path / "report.json", env)
    line = f"schemathesis {service}: {describe(summary, output)}"
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(line)
    assert code == 0, readable(output)
    assert "500" not in statuses(summary), readable(output)


def psycopg_conn(settings):
    from tests.app_support import role_conn

    return role_conn(settings)


def readable(output: str) -> str:
    """The run's report without its kilobyte-long reproduction commands."""
    return "\n".join(line[:300] for line in output.splitlines() if line.strip())[-8000:]


def statuses(summary: dict) -> dict:
    return summary.get("statuses", {}) if isinstance(summary, dict) else {}


def describe(summary: dict, output: str) -> str:
    """"N operations, M test cases generated, K failures" from the run's summary section."""
    lines = [line.strip() for line in output.splitlines()]
    found = {}
    for i, line in enumerate(lines):
        if line == "Test cases:" and i + 1 < len(lines):
            found["cases"] = lines[i + 1]
        elif line.startswith("Tested:"):
            found["operations"] = line.removeprefix("Tested:").strip()
        elif line.startswith("Failures:"):
            found["failures"] = "see above"
    return (f"{found.get('operations', '?')} operations; test cases: {found.get('cases', '?')}"
            + ("" if "failures" not in found else "; FAILURES"))
