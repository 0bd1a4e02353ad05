"""A stored decision replays to itself: decided by the worker's handler, read back from the
database, recomputed from its input snapshot, assessed_on and rules version. A decision
made under a rules version that is not available is refused, not approximated."""
from __future__ import annotations

from datetime import date

import pytest

from tests.triage_support import clinical, decide_as_worker, report_event

from services.triage import store
from services.triage.replay import DECISION_FIELDS, ReplayRefused, differences, replay

# The worked examples of care-rules.md and the "not sure" cases, as the worker stores them.
CASES = {
    "self_care": clinical(severity=4, pain_days=5),
    "urgent": clinical(severity=8, onset="sudden", trauma=True, locations=("groin",)),
    "not_improving": clinical(severity=5, locations=("inner_hip",), pain_days=30, home_days=21, improving="no"),
    "locking": clinical(severity=3, locations=("buttock",), locking=True),
    "not_sure_instability": clinical(severity=2, high_impact=False, instability=None),
    "not_sure_trauma_and_severity_missing": {**clinical(trauma=None), "pain": {"locations": ["groin"]}},
    "persistent_pain": clinical(pain_days=60),
}


@pytest.mark.integration
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stored_decision_replays_to_the_same_decision(triage_conn, rules, case):
    event = report_event(CASES[case])
    decide_as_worker(triage_conn, rules, event)
    row = store.get_decision(triage_conn, event["data"]["report_id"])

    replayed = replay(row, rules)

    assert differences(row, replayed) == {}
    for name in DECISION_FIELDS:
        assert replayed[name] == row[name], name


def _row(**overrides) -> dict:
    return {"report_id": "r-1", "rules_version": "2026-12-2", "input_snapshot": clinical(),
            "assessed_on": date(2026, 11, 26), **overrides}


def test_a_decision_under_another_rules_version_is_refused(rules):
    with pytest.raises(ReplayRefused) as refused:
        replay(_row(rules_version="2025-01-1"), rules)
    message = str(refused.value)
    assert "r-1" in message and "'2025-01-1'" in message and "'2026-12-2'" in message
    assert "cannot be replayed" in message


def test_replay_counts_the_pain_duration_to_the_stored_day_not_to_today(rules):
    # 42 days of pain on the day it was assessed: persistent then, whatever the date today
    row = _row(input_snapshot=clinical(pain_days=42, today=date(2026, 11, 26)))
    assert [f["id"] for f in replay(row, rules)["fired"]] == ["SPC-PERSISTENT-PAIN"]
    assert [f["id"] for f in replay({**row, "assessed_on": date(2026, 11, 25)}, rules)["fired"]] == ["SELF-CARE"]
