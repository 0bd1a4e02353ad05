"""`clinic rules preview FILE` and `clinic rules replay`: triage rule files against the
decisions triage has stored."""
from __future__ import annotations

from pathlib import Path

from services.common.settings import Settings

from .database import service_connection
from .errors import CommandError


def preview(settings: Settings, path: str, in_force: str | None = None) -> str:
    """Check a candidate rule file, then show what it would change in the stored decisions.
    `in_force`: the rule file they were made under, when not the shipped one (a release that
    ships a new version is previewed against the previous one, kept under rules/history/)."""
    from services.triage import preview as rule_preview
    from services.triage import store
    from services.triage.domain import RuleFileError, default_rules_path, load_rules

    try:
        candidate = load_rules(Path(path))
    except RuleFileError as exc:  # names every bad entry, e.g. "rules[0].when.op: unknown operator"
        raise CommandError(str(exc)) from None
    try:
        current = load_rules(Path(in_force) if in_force else default_rules_path())
    except RuleFileError as exc:
        raise CommandError(str(exc)) from None
    with service_connection(settings, "triage") as conn:
        summary = rule_preview.compare(store.stored_inputs(conn), current, candidate)
    return rule_preview.render(summary, path)


def replay(settings: Settings) -> tuple[str, bool]:
    """Recompute every stored decision made under the rules in force from its input snapshot;
    (the report, whether every one was reproduced). Decisions of another rules version are
    counted, never approximated with today's rules."""
    from services.triage import replay as decision_replay
    from services.triage import store
    from services.triage.domain import default_rules_path, load_rules

    rules = load_rules(default_rules_path())
    reproduced, other_version, differing = 0, {}, []
    with service_connection(settings, "triage") as conn:
        for row in store.stored_decisions(conn):
            try:
                replayed = decision_replay.replay(row, rules)
            except decision_replay.ReplayRefused:
                other_version[row["rules_version"]] = other_version.get(row["rules_version"], 0) + 1
                continue
            if changed := decision_replay.differences(row, replayed):
                differing.append((row["report_id"], changed))
            else:
                reproduced += 1
    return decision_replay.render(rules.version, reproduced, other_version, differing), not differing
