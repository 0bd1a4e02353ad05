"""`clinic rules preview FILE` against the real database: a bad candidate is refused naming
the entry; a good one is compared with every stored decision, lowered urgents first."""
from __future__ import annotations

import uuid

import pytest

from tests.triage_support import (  # noqa: F401  (fixtures)
    clinical,
    decide_as_worker,
    report_event,
    rules,
    triage_conn,
    triage_settings,
)

from services.cli import main
from services.triage.domain import default_rules_path

pytestmark = pytest.mark.integration


@pytest.fixture
def clinic_env(monkeypatch, stack_env):
    """The environment `clinic` reads, pointing at the test infra."""
    for name in ("CLINIC_SERVICE", "CLINIC_DATABASE_URL", "CLINIC_INTAKE_DATABASE_URL",
                 "CLINIC_TRIAGE_DATABASE_URL", "CLINIC_REFERRAL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)


def candidate_file(tmp_path, *replacements: tuple[str, str]):
    text = default_rules_path().read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "candidate-rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def store(conn, rules, answers) -> str:
    event = report_event(answers)
    decide_as_worker(conn, rules, event)
    return event["data"]["report_id"]


def test_a_higher_severe_threshold_shows_the_severity_8_urgents_it_would_lower(
        clinic_env, tmp_path, capsys, triage_conn, rules):
    severe_only = store(triage_conn, rules, clinical(severity=8, locations=("groin",)))
    severe_and_locking = store(triage_conn, rules, clinical(severity=8, locking=True))
    severity_9 = store(triage_conn, rules, clinical(severity=9))
    path = candidate_file(tmp_path, ('rules_version: "2026-11-1"', 'rules_version: "2026-11-2"'),
                          ("severe_pain_min: 7", "severe_pain_min: 9"))
    total = triage_conn.execute("SELECT count(*) FROM triage.decisions").fetchone()[0]

    assert main(["rules", "preview", str(path)]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"Rule-change preview: rules in force 2026-11-1 -> candidate 2026-11-2 ({path})"
    assert lines[1] == f"Decisions recomputed: {total}"
    assert lines[2].startswith("Would change level:")
    urgent_header = next(i for i, line in enumerate(lines) if line.startswith("URGENT DECISIONS THIS CHANGE"))
    other_header = lines.index(next(line for line in lines if line.startswith("Other lowered decisions")))
    assert urgent_header < other_header
    urgent_section = lines[urgent_header + 1:other_header]
    assert f"  {severe_only}  urgent -> self_care  stops firing: URG-SEVERE  starts firing: SELF-CARE" \
        in urgent_section
    assert f"  {severe_and_locking}  urgent -> specialist  stops firing: URG-SEVERE" in urgent_section
    assert severity_9 not in out
    assert "WARNING" not in out


def test_the_same_version_with_other_rules_is_flagged(clinic_env, tmp_path, capsys):
    path = candidate_file(tmp_path, ("severe_pain_min: 7", "severe_pain_min: 9"))
    assert main(["rules", "preview", str(path)]) == 0
    assert "WARNING: the candidate changes the rules but keeps rules_version 2026-11-1" in capsys.readouterr().out


@pytest.mark.parametrize(("replacements", "message"), [
    ((('op: ">=", setting: severe_pain_min', 'op: "=>", setting: severe_pain_min'),),
     "rules[0].when.op: unknown operator '=>'"),
    ((("severe_pain_min: 7", "severe_pain_min: 11"),), "settings.severe_pain_min"),
    ((("  - id: URG-SUDDEN", "  - id: URG-SEVERE"),), "rules[1].id"),
    ((("rules:\n", "rules:\n  oops: [\n"),), "line "),
])
def test_a_bad_candidate_is_refused_naming_the_entry(clinic_env, tmp_path, capsys, replacements, message):
    path = candidate_file(tmp_path, *replacements)
    assert main(["rules", "preview", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"clinic: rule file {path} refused")
    assert message in captured.err
    assert "Traceback" not in captured.err


def test_a_missing_file_is_refused(clinic_env, tmp_path, capsys):
    missing = tmp_path / f"{uuid.uuid4()}.yaml"
    assert main(["rules", "preview", str(missing)]) == 1
    assert "cannot read it" in capsys.readouterr().err
