"""decide(): a symptom report and a rule set in, a decision out. Pure.

How the engine reads the care rules where they leave room (the rule-specific
readings are commented in care-rules.yaml):
- Unknown answers - "not sure" (null), a missing key, a wrong type, a value
  out of range (severity 11, a start date after tomorrow) - make the
  condition that reads them count as met, and the reason says so. Hence a
  missing severity fires URG-SEVERE and a missing onset fires URG-SUDDEN: the
  answer could have been the serious one, and an unknown never lowers the
  level. Inside `all:` a definite "no" still wins (13 days of home care does
  not fire SPC-NOT-IMPROVING even if `improving` is unknown).
- The fallback rule (SELF-CARE) fires only when no other rule fired; all
  rules that fired are listed in rule-file order, and the most serious level
  wins.
- Unknown or partly unreadable locations give likely source `mixed` and keep
  the stress fracture possible: neither can be ruled out.
- Advice comes from the rule file per level; for urgent and specialist it
  also says what the consult may offer. The decision carries the referral
  terms (priority, window in days) of the rules in force, so the referral
  service needs no rule file. `decided_at` is stamped by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from .conditions import Outcome, cause_fact, is_met
from .decision import Decision, FiredRule
from .facts import read_facts
from .ruleset import Rule, RuleSet
from .vocabulary import seriousness


def decide(report: Mapping, rules: RuleSet, today: date) -> Decision:
    """Triage one report body (keys activity, pain, function, home_care).

    `today` is today's date in UTC; pain duration is counted up to it.
    """
    facts = read_facts(report, today)

    fired: list[FiredRule] = []
    level = None
    for rule in rules.conditional_rules:
        outcome = rule.condition.evaluate(facts)
        if is_met(outcome):
            fired.append(FiredRule(rule.id, _reason(rule, outcome, rules)))
            if level is None or seriousness(rule.level) > seriousness(level):
                level = rule.level
    if not fired:
        # SELF-CARE (or whatever the file names `otherwise`) only when nothing else fired
        fallback = rules.fallback
        fired.append(FiredRule(fallback.id, fallback.reason))
        level = fallback.level

    causes = []
    for cause in rules.possible_causes:
        listed = is_met(cause.condition.evaluate(facts))
        facts[cause_fact(cause.id)] = listed   # notes may ask "is this cause listed?"
        if listed:
            causes.append(cause.name)
    notes = tuple(note.text for note in rules.notes if is_met(note.condition.evaluate(facts)))

    return Decision(
        care_level=level,
        fired=tuple(fired),
        likely_source=_likely_source(facts, rules),
        possible_causes=tuple(causes),
        notes=notes,
        advice=rules.advice_for(level),
        rules_version=rules.version,
        referral=rules.referral_for(level),
    )


def _reason(rule: Rule, outcome: Outcome, rules: RuleSet) -> str:
    if outcome is True:
        return rule.reason
    # fired only because some answers were unknown: say which, and that we assumed the worst
    fields = dict.fromkeys(outcome)   # de-duplicated, first-seen order
    assumptions = "; ".join(rules.unknown_answer_texts[field] for field in fields)
    return f"{rule.reason.rstrip('.')} ({assumptions})."


def _likely_source(facts: Mapping[str, object], rules: RuleSet) -> str:
    # unknown locations match both groups: neither source can be ruled out
    joint = is_met(rules.joint_locations.evaluate(facts))
    soft_tissue = is_met(rules.soft_tissue_locations.evaluate(facts))
    if joint and not soft_tissue:
        return "joint"
    if soft_tissue and not joint:
        return "soft_tissue"
    return "mixed"
