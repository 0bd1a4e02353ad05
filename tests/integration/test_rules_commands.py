"""`clinic rules preview FILE` and `clinic rules replay` against the real database.

preview: a bad candidate is refused naming the entry; a good one is compared with every
stored decision, lowered urgents first. replay: every stored decision of the rules in force
is recomputed from its input, and one that is not reproduced is named, with exit code 1."""
from __future__ import annotations

import uuid

import pytest

from tests.triage_support import clinical, decide_as_worker, report_event

from services.admin.cli import main
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
    path = candidate_file(tmp_path, ('rules_version: "2026-12-2"', 'rules_version: "2026-12-3"'),
                          ("severe_pain_min: 7", "severe_pain_min: 9"))
    total = triage_conn.execute("SELECT count(*) FROM triage.decisions").fetchone()[0]

    assert main(["rules", "preview", str(path)]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"Rule-change preview: rules in force 2026-12-2 -> candidate 2026-12-3 ({path})"
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
    assert "WARNING: the candidate changes the rules but keeps rules_version 2026-12-2" in capsys.readouterr().out


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


def test_replay_reproduces_stored_decisions_and_names_one_that_was_altered(clinic_env, capsys, triage_conn, rules):
    kept = store(triage_conn, rules, clinical(severity=8, locations=("groin",)))
    altered = store(triage_conn, rules, clinical(severity=4))
    other_version = store(triage_conn, rules, clinical(severity=5))
    # What an engine change without a new rules version (or a hand edit) would leave behind.
    triage_conn.execute("UPDATE triage.decisions SET care_level = 'urgent' WHERE report_id = %s", (altered,))
    triage_conn.execute("UPDATE triage.decisions SET rules_version = '2025-01-1' WHERE report_id = %s",
                        (other_version,))
    triage_conn.commit()
    try:
        assert main(["rules", "replay"]) == 1
    finally:  # the database is shared: leave no decision behind that another replay would trip on
        triage_conn.execute("DELETE FROM triage.decisions WHERE report_id = ANY(%s)", ([altered, other_version],))
        triage_conn.commit()

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rules 2026-12-2: ") and "not reproduced" in lines[0]
    assert any(line.startswith("rules 2025-01-1: ") and "not replayed (that rule file is not installed)" in line
               for line in lines)
    at = lines.index(f"report {altered}:")
    assert lines[at + 1] == "  care_level: stored 'urgent', replayed 'self_care'"
    assert f"report {kept}:" not in lines
    assert f"report {other_version}:" not in lines


@pytest.fixture
def own_database(clinic_env, pg, monkeypatch):
    """A database of this test's own, bootstrapped as `clinic db bootstrap` does, so that its
    count of stored decisions is exactly what the test stored."""
    from services.admin.database import bootstrap_database, role_passwords, service_connection
    from services.common.settings import load

    name = f"clinic_replay_{uuid.uuid4().hex[:8]}"
    # The roles keep their passwords: they are shared with every other test's database.
    bootstrap_database(pg.admin_url().rsplit("/", 1)[0] + "/postgres", name, role_passwords(load()))
    monkeypatch.setenv("CLINIC_DB_NAME", name)
    with service_connection(load(), "triage") as conn:
        yield conn


def test_replay_with_every_decision_reproduced_exits_0(own_database, capsys, rules):
    for answers in (clinical(severity=3), clinical(severity=8, onset="sudden"), clinical(locking=True)):
        store(own_database, rules, answers)
    own_database.commit()

    assert main(["rules", "replay"]) == 0

    assert capsys.readouterr().out == "rules 2026-12-2: 3 stored decision(s) replayed, 3 reproduced, 0 not reproduced\n"
