"""The rule-change preview's comparison, with fake stored rows and candidate rule texts."""
from __future__ import annotations

from datetime import date, timedelta

import pytest

from services.triage.domain import decide, default_rules_path, load_rules
from services.triage.preview import compare, render

TODAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def shipped_text() -> str:
    return default_rules_path().read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def current(shipped_text):
    return load_rules(shipped_text)


def candidate(shipped_text: str, version: str | None = "2026-12-3", **settings: int):
    text = shipped_text
    if version:
        text = text.replace('rules_version: "2026-12-2"', f'rules_version: "{version}"')
    for name, value in settings.items():
        old = next(line for line in text.splitlines() if line.lstrip().startswith(f"{name}:"))
        text = text.replace(old, f"  {name}: {value}", 1)
    return load_rules(text)


def answers(*, severity=4, onset="gradual", trauma=False, locking=False, pain_days=5, home_days=0,
            improving="not_tried") -> dict:
    return {
        "activity": {"sport": "running", "high_impact": True},
        "pain": {"locations": ["outer_hip"], "side": "left", "severity": severity, "onset": onset,
                 "started_on": (TODAY - timedelta(days=pain_days)).isoformat(), "direct_trauma": trauma},
        "function": {"joint_locking": locking, "instability": False, "persistent_dysfunction": False},
        "home_care": {"measures": ["rest"] if home_days else [], "days": home_days, "improving": improving},
    }


def stored(report_id: str, rules, assessed_on: date = TODAY, **kwargs) -> dict:
    """A row as store.stored_inputs yields it, decided under `rules`."""
    snapshot = answers(**kwargs)
    return {"report_id": report_id, "care_level": decide(snapshot, rules, assessed_on).care_level,
            "rules_version": rules.version, "input_snapshot": snapshot, "assessed_on": assessed_on}


def test_raising_the_severe_threshold_lowers_severity_8_urgents_only(shipped_text, current):
    rows = [stored("sev8", current, severity=8), stored("sev9", current, severity=9),
            stored("sev8-locks", current, severity=8, locking=True),
            stored("sev8-sudden", current, severity=8, onset="sudden"), stored("mild", current)]

    summary = compare(rows, current, candidate(shipped_text, severe_pain_min=9))

    assert summary.total == 5
    assert summary.changed_count == summary.lowered_count == 2
    assert summary.raised == () and summary.other_lowered == ()
    # the biggest drop first
    assert [(c.report_id, c.old_level, c.new_level) for c in summary.urgent_lowered] == [
        ("sev8", "urgent", "self_care"), ("sev8-locks", "urgent", "specialist")]
    assert all(c.stops_firing == ("URG-SEVERE",) for c in summary.urgent_lowered)
    assert summary.urgent_lowered[1].starts_firing == ()
    # sev9 and sev8-sudden keep their level, but URG-SEVERE's reason now says 9: reworded
    assert summary.reworded == 2


def test_lowered_and_raised_are_told_apart(shipped_text, current):
    rows = [stored("home-14", current, home_days=14, improving="no", pain_days=20),
            stored("pain-35", current, pain_days=35),
            stored("sev8", current, severity=8)]

    summary = compare(rows, current, candidate(shipped_text, home_care_days_min=21,
                                                persistent_pain_days_min=30, severe_pain_min=9))

    assert [(c.report_id, c.old_level, c.new_level, c.stops_firing) for c in summary.other_lowered] == [
        ("home-14", "specialist", "self_care", ("SPC-NOT-IMPROVING",))]
    assert [(c.report_id, c.old_level, c.new_level, c.stops_firing, c.starts_firing) for c in summary.raised] \
        == [("pain-35", "self_care", "specialist", ("SELF-CARE",), ("SPC-PERSISTENT-PAIN",))]
    assert [c.report_id for c in summary.urgent_lowered] == ["sev8"]
    assert (summary.changed_count, summary.lowered_count) == (3, 2)


def test_each_row_is_decided_on_its_own_assessed_on_day(shipped_text, current):
    # 40 days of pain when assessed; 45 by today's date. A 41-day threshold must not fire.
    row = stored("old", current, pain_days=40)
    summary = compare([row], current, candidate(shipped_text, persistent_pain_days_min=41))
    assert summary.changed_count == 0
    summary = compare([row], current, candidate(shipped_text, persistent_pain_days_min=40))
    assert [c.report_id for c in summary.raised] == ["old"]


def test_the_same_file_changes_nothing(current):
    rows = [stored("a", current, severity=8), stored("b", current, locking=True), stored("c", current)]
    summary = compare(rows, current, current)
    assert (summary.total, summary.changed_count, summary.reworded) == (3, 0, 0)
    assert summary.same_content and not summary.version_not_bumped


def test_a_change_without_a_new_version_is_flagged(shipped_text, current):
    summary = compare([], current, candidate(shipped_text, version=None, severe_pain_min=9))
    assert summary.version_not_bumped
    assert "WARNING" in render(summary, "candidate.yaml")


def test_rows_of_other_versions_and_unreproduced_levels_are_named(shipped_text, current):
    rows = [{**stored("older", current), "rules_version": "2026-10-1"},
            {**stored("odd", current), "care_level": "urgent"}]
    summary = compare(rows, current, candidate(shipped_text))
    assert summary.other_versions == {"2026-10-1": 1}
    assert summary.not_reproduced == ("odd",)
    text = render(summary, "candidate.yaml")
    assert "2026-10-1: 1" in text and "odd" in text


def test_rows_are_streamed_once(shipped_text, current):
    rows = (stored(str(i), current, severity=i % 11) for i in range(30))
    summary = compare(rows, current, candidate(shipped_text, severe_pain_min=9))
    assert summary.total == 30
    assert sorted(c.report_id for c in summary.urgent_lowered) == ["18", "19", "29", "7", "8"]


def test_render_puts_lowered_urgents_first_and_plainly(shipped_text, current):
    rows = [stored("raised", current, pain_days=35), stored("home-14", current, home_days=14, improving="no"),
            stored("sev8", current, severity=8)]
    summary = compare(rows, current, candidate(shipped_text, severe_pain_min=9, home_care_days_min=21,
                                                persistent_pain_days_min=30))
    lines = render(summary, "candidate.yaml").splitlines()
    assert lines[0] == "Rule-change preview: rules in force 2026-12-2 -> candidate 2026-12-3 (candidate.yaml)"
    assert lines[1] == "Decisions recomputed: 3"
    assert lines[2] == "Would change level:   3 (lowered 2, raised 1)"
    body = lines[lines.index("") + 1:]
    assert body == [
        "URGENT DECISIONS THIS CHANGE WOULD LOWER: 1 (each of these patients was told to seek a prompt"
        " assessment)",
        "  sev8  urgent -> self_care  stops firing: URG-SEVERE  starts firing: SELF-CARE",
        "Other lowered decisions: 1",
        "  home-14  specialist -> self_care  stops firing: SPC-NOT-IMPROVING  starts firing: SELF-CARE",
        "Raised decisions: 1",
        "  raised  self_care -> specialist  stops firing: SELF-CARE  starts firing: SPC-PERSISTENT-PAIN",
    ]


def test_render_says_none_when_nothing_changes(current):
    text = render(compare([stored("a", current)], current, current), "same.yaml")
    assert "Urgent decisions this change would lower: none" in text
    assert "Other lowered decisions: none" in text and "Raised decisions: none" in text


def test_rules_2026_12_1_lower_no_decision_of_2026_11_1():
    """Issue 14: the release previewed against the version it replaces, over a grid of the
    answers the new rule reads (and an unknown or two): raised only, never lowered."""
    import itertools
    from pathlib import Path

    history = Path(__file__).resolve().parents[2] / "services/triage/rules/history"
    previous, shipped = load_rules(history / "care-rules-2026-11-1.yaml"), load_rules(history / "care-rules-2026-12-1.yaml")
    rows = []
    grid = itertools.product(
        (["groin"], ["inner_hip", "buttock"], ["outer_hip"]), ("gradual", "sudden"), (True, False),
        ("Trail running", "cycling", "!!"), (0, 13, 14, 41, 42), ("yes", "no", "not_tried"), (False, None))
    for i, (locations, onset, high_impact, sport, days, improving, locking) in enumerate(grid):
        snapshot = answers(onset=onset, pain_days=days, improving=improving, locking=locking,
                           home_days=0 if improving == "not_tried" else 14)
        snapshot["pain"]["locations"] = locations
        snapshot["activity"] = {"sport": sport, "high_impact": high_impact}
        rows.append(stored(str(i), previous, **{}) | {"input_snapshot": snapshot,
                                                     "care_level": decide(snapshot, previous, TODAY).care_level})
    summary = compare(rows, previous, shipped)
    assert summary.total == len(rows) == 3 * 2 * 2 * 3 * 5 * 3 * 2
    assert summary.lowered_count == 0 and summary.not_reproduced == ()
    assert summary.raised and {c.starts_firing for c in summary.raised} == {("SPC-STRESS-FRACTURE",)}


def test_rules_2026_12_2_lower_no_decision_of_2026_12_1_and_raise_only_spanish_sports():
    """Issue 18: 2026-12-2 adds Spanish words for the high-impact sports. Over a grid of the
    answers SPC-STRESS-FRACTURE reads, with English and Spanish sports: nothing is lowered,
    and what is raised is raised by that rule alone, for a Spanish sport answered "not
    high-impact" (an English one already counted)."""
    import itertools
    from pathlib import Path

    history = Path(__file__).resolve().parents[2] / "services/triage/rules/history/care-rules-2026-12-1.yaml"
    previous, shipped = load_rules(history), load_rules(default_rules_path())
    rows, sports = [], {}
    grid = itertools.product(
        (["groin"], ["outer_hip"]), ("gradual", "sudden"), (True, False),
        ("Trail running", "correr", "Fútbol sala", "ciclismo", "natación"), (13, 14, 42), ("yes", "no"))
    for i, (locations, onset, high_impact, sport, days, improving) in enumerate(grid):
        snapshot = answers(onset=onset, pain_days=days, improving=improving, home_days=14)
        snapshot["pain"]["locations"] = locations
        snapshot["activity"] = {"sport": sport, "high_impact": high_impact}
        sports[str(i)] = (sport, high_impact)
        rows.append(stored(str(i), previous) | {"input_snapshot": snapshot,
                                                "care_level": decide(snapshot, previous, TODAY).care_level})
    summary = compare(rows, previous, shipped)
    assert summary.total == len(rows) == 2 * 2 * 2 * 5 * 3 * 2
    assert summary.lowered_count == 0 and summary.not_reproduced == ()
    assert {c.starts_firing for c in summary.raised} == {("SPC-STRESS-FRACTURE",)}
    assert {sports[c.report_id] for c in summary.raised} == {("correr", False), ("Fútbol sala", False)}
