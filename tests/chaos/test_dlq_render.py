"""`clinic dlq`: naming the topic, and what `list` and `replay` print (no I/O here; the
commands run against a live stack in tests/e2e/test_chaos_short.py)."""
from __future__ import annotations

import pytest

from services.admin import cli, dlq


def letter(partition: int, offset: int, **headers: str) -> dlq.DeadLetter:
    return dlq.DeadLetter(partition, offset, "key-1", b"{not json",
                          [(k.replace("dlq_", "dlq.", 1), v.encode()) for k, v in headers.items()], 1_764_000_000_000)


def test_either_name_of_a_topic_is_understood_and_others_refused():
    assert dlq.resolve_topic("clinic.symptom-reports.v1") == ("clinic.symptom-reports.v1",
                                                              "clinic.symptom-reports.v1.dlq")
    assert dlq.resolve_topic("clinic.symptom-reports.v1.dlq")[0] == "clinic.symptom-reports.v1"
    with pytest.raises(dlq.DlqError, match="unknown topic 'clinic.nope'"):
        dlq.resolve_topic("clinic.nope")


def test_list_shows_offset_key_error_time_and_whether_replayed():
    letters = [
        letter(2, 0, dlq_error="not JSON: bad", dlq_error_type="InvalidEvent", dlq_consumer_group="clinic-triage",
               dlq_original_topic="clinic.symptom-reports.v1", dlq_original_partition="2",
               dlq_original_offset="41", dlq_failed_at="2026-11-26T10:00:00+00:00"),
        letter(2, 1, dlq_error="data invalid", dlq_error_type="PoisonEvent"),
    ]
    text = dlq.render_list("clinic.symptom-reports.v1", letters, {2: 1})
    assert text.splitlines()[0] == "clinic.symptom-reports.v1.dlq: 2 dead letter(s), 1 not replayed"
    first = text.splitlines()[2]
    assert first.split()[:6] == ["2/0", "2026-11-26T10:00:00+00:00", "clinic-triage", "2/41", "yes", "key-1"]
    assert "InvalidEvent: not JSON: bad" in text.splitlines()[3]
    assert text.splitlines()[4].split()[4] == "no"
    assert dlq.render_list("clinic.referral-events.v1", [], {}) == "clinic.referral-events.v1.dlq: no dead letters"


def test_replay_summary():
    result = dlq.ReplayResult("clinic.triage-decisions.v1.dlq", sent=3, duplicates=3, already_replayed=6)
    assert dlq.render_replay(result) == ("clinic.triage-decisions.v1.dlq: sent 3 message(s) back to "
                                         "clinic.triage-decisions.v1; 3 duplicate(s) left out; 6 replayed before")
    assert dlq.render_replay(result, dry_run=True).startswith("clinic.triage-decisions.v1.dlq: would send 3")


def test_the_command_line_has_list_and_replay():
    parser = cli.build_parser()
    args = parser.parse_args(["dlq", "replay", "clinic.symptom-reports.v1", "--dry-run"])
    assert (args.command, args.action, args.topic, args.dry_run) == ("dlq", "replay", "clinic.symptom-reports.v1", True)
    assert parser.parse_args(["dlq", "list", "clinic.referral-events.v1.dlq"]).action == "list"
    with pytest.raises(SystemExit):
        parser.parse_args(["dlq", "purge", "clinic.symptom-reports.v1"])
