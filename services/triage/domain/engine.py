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
- Possible causes and notes are worked out first: advice lines (`when:`/`unless:`) and a
  rule's `reasons_when` may depend on them (2026-12-1: a suspected stress fracture puts
  "stop running" first at every level, and SELF-CARE never says "no warning signs" beside
  an imaging note). They never change the level.
- The free-text sport is read as case- and accent-folded words; a sport on the rule file's
  `high_impact_sports` counts as high-impact whatever the answer, and a reason that relied
  on it over a "not high-impact" answer says so.
- Advice comes from the rule file per level; for urgent and specialist it
  also says what the consult may offer. The decision carries the referral
  terms (priority, window in days) of the rules in force, so the referral
  service needs no rule file. `decided_at` is stamped by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from .conditions import Outcome, cause_fact, is_met, note_fact
from .decision import Decision, FiredRule
from .facts import read_facts
from .ruleset import Rule, RuleSet
from .vocabulary import seriousness


def decide(report: Mapping, rules: RuleSet, today: date) -> Decision:
    """Triage one report body (keys activity, pain, function, home_care).

    `today` is today's date in UTC; pain duration is counted up to it.
    """
    facts = read_facts(report, today)

    # Possible causes and notes first: advice and some reasons depend on them, never the level.
    causes = []
    for cause in rules.possible_causes:
        listed = is_met(cause.condition.evaluate(facts))
        facts[cause_fact(cause.id)] = listed   # notes, advice and reasons may ask "is this cause listed?"
        if listed:
            causes.append(cause.name)
    notes = []
    for note in rules.notes:
        listed = is_met(note.condition.evaluate(facts))
        facts[note_fact(note.id)] = listed
        if listed:
            notes.append(note.text)

    fired: list[FiredRule] = []
    level = None
    for rule in rules.conditional_rules:
        outcome = rule.condition.evaluate(facts)
        if is_met(outcome):
            fired.append(_fired(rule, outcome, rules, facts))
            if level is None or seriousness(rule.level) > seriousness(level):
                level = rule.level
    if not fired:
        # SELF-CARE (or whatever the file names `otherwise`) only when nothing else fired
        fallback = rules.fallback
        fired.append(_fired(fallback, True, rules, facts))
        level = fallback.level

    advice = rules.advice_for(level, lambda condition: is_met(condition.evaluate(facts)))
    return Decision(
        care_level=level,
        fired=tuple(fired),
        likely_source=_likely_source(facts, rules),
        possible_causes=tuple(causes),
        notes=tuple(notes),
        advice=tuple(line.text for line in advice),
        rules_version=rules.version,
        referral=rules.referral_for(level),
        advice_ids=tuple(line.id for line in advice),
        safety_netting=tuple(line.id for line in advice if line.safety_netting),
    )


def _fired(rule: Rule, outcome: Outcome, rules: RuleSet, facts: Mapping[str, object]) -> FiredRule:
    """The rule with its reason, and the parts the reason was made of (to say it in another
    language: FiredRule.compose)."""
    # the first `reasons_when` entry met, else the rule's own reason
    variant = next((variant for variant in rule.reasons_when if is_met(variant.condition.evaluate(facts))), None)
    reason, reason_id, reads_list = ((variant.reason, variant.id, variant.reads_sport_list) if variant
                                     else (rule.reason, rule.id, rule.reads_sport_list))
    # fired only because some answers were unknown: say which (de-duplicated, first-seen
    # order), and that we assumed the worst
    unknown = tuple(dict.fromkeys(outcome)) if outcome is not True else ()
    word = _sport_overrode_answer(rules, facts) if reads_list else None
    said = [rules.unknown_answer_texts[field] for field in unknown]
    if word is not None:
        said.append(rules.high_impact_sports.answer_overridden.replace("{word}", word))
    return FiredRule(rule.id, FiredRule.compose(reason, said), reason_id, unknown, word)


def _sport_overrode_answer(rules: RuleSet, facts: Mapping[str, object]) -> str | None:
    """The sport word ("running") that counted as high-impact over a "not high-impact"
    answer, when it is so."""
    sports = rules.high_impact_sports
    if sports is None or facts.get("activity.high_impact") is not False:
        return None
    words = facts.get(sports.condition.field)
    if not isinstance(words, tuple):
        return None
    found = sports.condition.match(words)
    return " ".join(found) if found else None


def _likely_source(facts: Mapping[str, object], rules: RuleSet) -> str:
    # unknown locations match both groups: neither source can be ruled out
    joint = is_met(rules.joint_locations.evaluate(facts))
    soft_tissue = is_met(rules.soft_tissue_locations.evaluate(facts))
    if joint and not soft_tissue:
        return "joint"
    if soft_tissue and not joint:
        return "soft_tissue"
    return "mixed"
