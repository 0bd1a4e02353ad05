"""Issue 14, part 3: `clinic rules preview` of rules 2026-12-1 on decisions stored under 2026-11-1.

A spread of demo-like reports (the worked examples of care-rules.md and their neighbours) is
decided by the triage worker's own handler under the previous rule file (kept in
services/triage/rules/history/), into a database of this test's own; then the shipped
2026-12-1 file is previewed against them, as a release would be. The new version may raise
decisions (the suspected stress fractures) and must lower none.

`CLINIC_PREVIEW_OUT=<file>` writes the preview and the legend of report ids there (how the
README's copy was made)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.triage_support import clinical, decide_as_worker, report_event

from services.admin.cli import main
from services.triage.domain import load_rules

pytestmark = pytest.mark.integration

HISTORY = Path(__file__).resolve().parents[2] / "services/triage/rules/history/care-rules-2026-11-1.yaml"
# The 2026-12-1 release, kept there since 2026-12-2 shipped (issue 18): this preview is of it.
RELEASE = HISTORY.with_name("care-rules-2026-12-1.yaml")


def answers(sport: str = "running", high_impact: bool = True, **kwargs) -> dict:
    body = clinical(high_impact=high_impact, **kwargs)
    body["activity"]["sport"] = sport
    return body


# (label, answers, level under 2026-11-1, level under 2026-12-1)
SPREAD = [
    ("ex1 runner, outer hip, 5 days", answers(locations=("outer_hip",)), "self_care", "self_care"),
    ("ex2 tackled footballer", answers("football", severity=8, onset="sudden", trauma=True, locations=("groin",),
                                       pain_days=0), "urgent", "urgent"),
    ("ex3 runner, inner hip, 30 days, home care 21 days not improving",
     answers(locations=("inner_hip",), severity=5, pain_days=30, home_days=21, improving="no"),
     "specialist", "specialist"),
    ("ex4 hurdler, hip locks", answers("hurdles", locations=("buttock",), severity=3, locking=True),
     "specialist", "specialist"),
    ("ex5 cyclist, not sure the hip gives way", answers("cycling", False, severity=2, instability=None),
     "specialist", "specialist"),
    ("ex6 marathon runner, groin, 41 days, rested 13 days", answers(
        "marathon", locations=("groin",), severity=6, pain_days=41, home_days=13, improving="no"),
     "self_care", "specialist"),
    ("ex6 the same, 10 days after onset", answers(
        "marathon", locations=("groin",), severity=6, pain_days=10, home_days=10, improving="no"),
     "self_care", "self_care"),
    ("ex7 'Trail running' answered not high-impact, inner hip, 20 days",
     answers("Trail running", False, locations=("inner_hip",), pain_days=20), "self_care", "specialist"),
    ("'Running shoes shop assistant', not high-impact, groin, 20 days",
     answers("Running shoes shop assistant", False, locations=("groin",), pain_days=20), "self_care", "specialist"),
    ("jogger, groin, 14 days, improving", answers("jogging", locations=("groin",), pain_days=14, home_days=7,
                                                  improving="yes"), "self_care", "specialist"),
    ("jogger, groin, 13 days", answers("jogging", locations=("groin",), pain_days=13), "self_care", "self_care"),
    ("cyclist, groin, 30 days, not high-impact", answers("cycling", False, locations=("groin",), pain_days=30),
     "self_care", "self_care"),
    ("footballer, groin, sudden, 20 days", answers("football", locations=("groin",), onset="sudden", pain_days=20),
     "urgent", "urgent"),
    ("runner, severe pain 8", answers(severity=8), "urgent", "urgent"),
    ("runner, not sure about a fall", answers(trauma=None), "urgent", "urgent"),
    ("swimmer, outer hip, 50 days, not improving", answers("swimming", False, pain_days=50, home_days=20,
                                                           improving="no"), "specialist", "specialist"),
    ("dancer, inner hip, 60 days, improving", answers("ballet dance", locations=("inner_hip",), pain_days=60,
                                                      home_days=30, improving="yes"), "self_care", "specialist"),
    ("rower, buttock, dysfunction", answers("rowing", False, locations=("buttock",), dysfunction=True),
     "specialist", "specialist"),
    ("tennis, groin and outer hip, 21 days",
     answers("Tennis", locations=("groin", "outer_hip"), pain_days=21), "self_care", "specialist"),
    ("yoga, inner hip, 25 days", answers("yoga", False, locations=("inner_hip",), pain_days=25),
     "self_care", "self_care"),
]


@pytest.fixture
def own_database(stack_env, pg, monkeypatch):
    """A database of this test's own (bootstrapped as `clinic db bootstrap` does), so the
    preview sees exactly the decisions stored here and other tests see none of them."""
    from services.admin.database import bootstrap_database, role_passwords, service_connection
    from services.common.settings import load

    for name in ("CLINIC_SERVICE", "CLINIC_DATABASE_URL", "CLINIC_INTAKE_DATABASE_URL",
                 "CLINIC_TRIAGE_DATABASE_URL", "CLINIC_REFERRAL_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in stack_env.items():
        monkeypatch.setenv(name, value)
    name = f"clinic_preview_{uuid.uuid4().hex[:8]}"
    bootstrap_database(pg.admin_url().rsplit("/", 1)[0] + "/postgres", name, role_passwords(load()))
    monkeypatch.setenv("CLINIC_DB_NAME", name)
    with service_connection(load(), "triage") as conn:
        yield conn


def test_the_2026_12_1_preview_on_2026_11_1_decisions_raises_the_stress_fractures_and_lowers_nothing(
        own_database, capsys):
    previous, shipped = load_rules(HISTORY), load_rules(RELEASE)
    assert (previous.version, shipped.version) == ("2026-11-1", "2026-12-1")
    ids = {}
    for label, body, old_level, _new_level in SPREAD:
        event = report_event(body)
        decide_as_worker(own_database, previous, event)   # the worker's handler, rules 2026-11-1
        ids[label] = event["data"]["report_id"]
    own_database.commit()
    stored = dict(own_database.execute("SELECT report_id::text, care_level FROM triage.decisions").fetchall())
    assert {label: stored[ids[label]] for label, *_ in SPREAD} == {label: old for label, _, old, _ in SPREAD}

    assert main(["rules", "preview", str(RELEASE), "--in-force", str(HISTORY)]) == 0

    out = capsys.readouterr().out
    lines = out.splitlines()
    raised = {label for label, _, old, new in SPREAD if new != old}
    assert lines[0].startswith("Rule-change preview: rules in force 2026-11-1 -> candidate 2026-12-1")
    assert lines[1] == f"Decisions recomputed: {len(SPREAD)}"
    assert lines[2] == f"Would change level:   {len(raised)} (lowered 0, raised {len(raised)})"
    assert "Urgent decisions this change would lower: none" in lines
    assert "Other lowered decisions: none" in lines
    assert f"Raised decisions: {len(raised)}" in lines
    assert "WARNING" not in out and "Note:" not in out   # every stored decision reproduced, same version
    for label in raised:
        assert (f"  {ids[label]}  self_care -> specialist  stops firing: SELF-CARE"
                f"  starts firing: SPC-STRESS-FRACTURE") in lines
    unchanged = set(ids.values()) - {ids[label] for label in raised}
    assert not any(report_id in out for report_id in unchanged)

    if target := os.environ.get("CLINIC_PREVIEW_OUT"):
        legend = [f"  {ids[label]}  {label}: {old} -> {new}" for label, _, old, new in SPREAD]
        Path(target).write_text(out + "\nReports stored (id, case: level under 2026-11-1 -> 2026-12-1):\n"
                                + "\n".join(legend) + "\n", encoding="utf-8")
