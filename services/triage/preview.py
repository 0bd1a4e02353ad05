"""Rule-change preview: what a candidate rule file would do to the decisions already made.

Pure: stored rows (report_id, care_level, rules_version, input_snapshot, assessed_on) and
two rule sets in, a summary out; `clinic rules preview` does the reading and printing.

Each row is decided twice, from its stored input and with its stored `assessed_on` as
"today": under the rules in force (the baseline) and under the candidate. Comparing the
two isolates what the file change does. The baseline equals the stored decision whenever
the row was made under the version in force (replay is deterministic); rows that do not
match are counted separately instead of being silently mixed in.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .domain import RuleSet, decide, seriousness

# Decision.to_dict() keys that say what a patient is told; rules_version differs by design
# and referral terms follow the level.
_CONTENT_KEYS = ("fired", "likely_source", "possible_causes", "notes", "advice")


@dataclass(frozen=True)
class LevelChange:
    report_id: str
    old_level: str
    new_level: str
    stops_firing: tuple[str, ...]   # rule ids fired under the rules in force, not under the candidate
    starts_firing: tuple[str, ...]  # and the other way round

    @property
    def lowered(self) -> bool:
        return seriousness(self.new_level) < seriousness(self.old_level)


@dataclass(frozen=True)
class PreviewSummary:
    current_version: str
    candidate_version: str
    same_content: bool                      # the candidate is the file in force, verbatim
    total: int = 0
    urgent_lowered: tuple[LevelChange, ...] = ()
    other_lowered: tuple[LevelChange, ...] = ()
    raised: tuple[LevelChange, ...] = ()
    reworded: int = 0                       # same level, but other rules, causes, notes or advice
    other_versions: Mapping[str, int] = field(default_factory=dict)  # stored version -> rows
    not_reproduced: tuple[str, ...] = ()    # rows whose stored level the rules in force do not give

    @property
    def lowered_count(self) -> int:
        return len(self.urgent_lowered) + len(self.other_lowered)

    @property
    def changed_count(self) -> int:
        return self.lowered_count + len(self.raised)

    @property
    def version_not_bumped(self) -> bool:
        return self.candidate_version == self.current_version and not self.same_content


def compare(rows: Iterable[Mapping], current: RuleSet, candidate: RuleSet) -> PreviewSummary:
    total = reworded = 0
    lowered: list[LevelChange] = []
    raised: list[LevelChange] = []
    other_versions: dict[str, int] = {}
    not_reproduced: list[str] = []
    for row in rows:  # streamed: only the changes are kept
        total += 1
        if row["rules_version"] != current.version:
            other_versions[row["rules_version"]] = other_versions.get(row["rules_version"], 0) + 1
        before = decide(row["input_snapshot"], current, today=row["assessed_on"])
        after = decide(row["input_snapshot"], candidate, today=row["assessed_on"])
        if before.care_level != row["care_level"]:
            not_reproduced.append(row["report_id"])
        if before.care_level == after.care_level:
            old, new = before.to_dict(), after.to_dict()
            reworded += any(old[key] != new[key] for key in _CONTENT_KEYS)
            continue
        change = LevelChange(
            report_id=row["report_id"], old_level=before.care_level, new_level=after.care_level,
            stops_firing=tuple(i for i in before.fired_ids if i not in after.fired_ids),
            starts_firing=tuple(i for i in after.fired_ids if i not in before.fired_ids))
        (lowered if change.lowered else raised).append(change)

    # Biggest drop first within each group; otherwise the rows' own order (oldest first).
    lowered.sort(key=lambda c: seriousness(c.new_level))
    raised.sort(key=lambda c: -seriousness(c.new_level))
    return PreviewSummary(
        current_version=current.version,
        candidate_version=candidate.version,
        same_content=dict(current.content) == dict(candidate.content),
        total=total,
        urgent_lowered=tuple(c for c in lowered if c.old_level == "urgent"),
        other_lowered=tuple(c for c in lowered if c.old_level != "urgent"),
        raised=tuple(raised),
        reworded=reworded,
        other_versions=other_versions,
        not_reproduced=tuple(not_reproduced),
    )


def render(summary: PreviewSummary, candidate_name: str) -> str:
    """The plain-text report `clinic rules preview` prints."""
    s = summary
    lines = [
        f"Rule-change preview: rules in force {s.current_version} -> candidate {s.candidate_version}"
        f" ({candidate_name})",
        f"Decisions recomputed: {s.total}",
        f"Would change level:   {s.changed_count} (lowered {s.lowered_count}, raised {len(s.raised)})",
        f"Same level, other rules, causes, notes or advice: {s.reworded}",
    ]
    if s.version_not_bumped:
        lines.append(f"WARNING: the candidate changes the rules but keeps rules_version {s.current_version};"
                     " bump it, or its decisions cannot be told from today's.")
    if s.other_versions:
        listed = ", ".join(f"{v}: {n}" for v, n in sorted(s.other_versions.items()))
        lines.append(f"Note: stored decisions made under other rules versions ({listed}) are compared"
                     f" by what the rules in force ({s.current_version}) would give them.")
    if s.not_reproduced:
        lines.append(f"Note: {len(s.not_reproduced)} stored decision(s) have a level the rules in force"
                     f" do not give: {', '.join(s.not_reproduced)}")

    lines.append("")
    if s.urgent_lowered:
        lines.append(f"URGENT DECISIONS THIS CHANGE WOULD LOWER: {len(s.urgent_lowered)}"
                     " (each of these patients was told to seek a prompt assessment)")
        lines += [_line(c) for c in s.urgent_lowered]
    else:
        lines.append("Urgent decisions this change would lower: none")
    for title, changes in (("Other lowered decisions", s.other_lowered), ("Raised decisions", s.raised)):
        lines.append(f"{title}: {len(changes) or 'none'}")
        lines += [_line(c) for c in changes]
    return "\n".join(lines)


def _line(change: LevelChange) -> str:
    parts = [f"  {change.report_id}  {change.old_level} -> {change.new_level}"]
    if change.stops_firing:
        parts.append(f"stops firing: {', '.join(change.stops_firing)}")
    if change.starts_firing:
        parts.append(f"starts firing: {', '.join(change.starts_firing)}")
    return "  ".join(parts)
