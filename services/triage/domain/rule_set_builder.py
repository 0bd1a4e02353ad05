"""Checks parsed rule-file data and builds a RuleSet, all or nothing.

Every problem found is collected with the path of the entry it is in (for
example "rules[3].when.op"), so one load names everything a clinician has to
fix; if there is any, RuleFileError is raised and no RuleSet exists.
"""

from __future__ import annotations

import re
import string
from dataclasses import replace
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from . import checking, text_ids
from .checking import Problems, describe
from .condition_parser import ConditionScope, parse_condition
from .conditions import Always, CauseListed, Condition, IncludesAny, OnList, parts_of
from .facts import words_of
from .errors import RuleFileError
from .ruleset import AdviceLine, HighImpactSports, Note, PossibleCause, ReasonVariant, ReferralTerms, Rule, RuleSet
from .vocabulary import ALWAYS, CARE_LEVELS, FIELDS, LOCATIONS, OTHERWISE, REFERRAL_PRIORITIES

TOP_LEVEL_KEYS = ("rules_version", "settings", "referral", "unknown_answers", "rules",
                  "likely_source", "possible_causes", "notes", "advice", "consult_may_offer")
OPTIONAL_TOP_LEVEL_KEYS = ("source_document", "high_impact_sports")

# Settings the code relies on, with the range that makes sense for each
# (low, high); a file may add more whole-number settings for its own rules.
REQUIRED_SETTINGS: dict[str, tuple[int, int | None]] = {
    "severe_pain_min": (1, 10),
    "home_care_days_min": (1, None),
    "persistent_pain_days_min": (1, None),
    "urgent_window_days": (1, None),
    "routine_window_days": (1, None),
}
LEVELS_WITH_REFERRAL = ("urgent", "specialist")

# `clinician_review: required` marks a rule or an advice line whose words go beyond its
# source sentence (or have none): a clinician must review it. Advice needs a source or this.
CLINICIAN_REVIEW = "clinician_review"
REVIEW_REQUIRED = "required"
# The field the high-impact sports list overrides, and the placeholder of its reason text.
HIGH_IMPACT_ANSWER = "activity.high_impact"
SPORT_FIELD = "activity.sport"
WORD_PLACEHOLDER = "{word}"
# `safety_netting: true` marks an advice line that says what to watch for and when to come back.
SAFETY_NETTING = "safety_netting"

_RULE_ID = re.compile(r"[A-Z][A-Z0-9]*(-[A-Z0-9]+)*")
_SNAKE_ID = re.compile(r"[a-z][a-z0-9_]*")
# Advice lines, reasons_when entries and consult options: their translations are found by it.
_TEXT_ID = re.compile(text_ids.KEBAB_ID)


def _keys(node: object) -> tuple:
    """Any key is allowed (the caller checks each one)."""
    return tuple(node) if isinstance(node, Mapping) else ()


# Marks the `when: otherwise` rule while building (its Rule.condition is None).
_FALLBACK = object()


class _Consult(NamedTuple):
    id: str                      # the advice id of the line
    levels: frozenset[str]
    line: str                    # "<lead_in> <option>, <option>, ... ."
    options: tuple[str, ...]
    option_ids: tuple[str, ...]


def build_rule_set(data: object, origin: str = "rule file") -> RuleSet:
    builder = _Builder()
    rule_set = builder.build(data)
    if builder.problems:
        raise RuleFileError(builder.problems.items, origin)
    return rule_set


class _Builder:
    def __init__(self) -> None:
        self.problems = Problems()
        self.settings: dict[str, int | None] = {}   # None: declared but refused
        self.word_lists: dict[str, tuple[tuple[str, ...], ...] | None] = {}   # None: refused
        self.texts: dict[str, str] = {}   # context -> English text as written (RuleSet.texts)

    def build(self, data: object) -> RuleSet | None:
        top = checking.mapping(self.problems, data, "", TOP_LEVEL_KEYS, OPTIONAL_TOP_LEVEL_KEYS)
        if top is None:
            return None
        version = checking.text(self.problems, top.get("rules_version"), "rules_version")
        if "source_document" in top:
            checking.text(self.problems, top["source_document"], "source_document")
        self._settings(top.get("settings"))
        sports = self._high_impact_sports(top["high_impact_sports"]) if "high_impact_sports" in top else None
        unknown_texts = self._unknown_answers(top.get("unknown_answers"))
        rules, fields_read, variant_nodes = self._rules(top.get("rules"))
        joint, soft_tissue = self._likely_source(top.get("likely_source"))
        causes, cause_ids = self._possible_causes(top.get("possible_causes"))
        notes, note_ids = self._notes(top.get("notes"), cause_ids)
        # Reasons and advice add no "unknown answer" text of their own: their fields need none.
        listing_scope = ConditionScope(self.problems, self.settings, cause_ids=cause_ids, note_ids=note_ids,
                                       word_lists=self.word_lists)
        rules = self._reasons_when(rules, variant_nodes, listing_scope)
        advice = self._advice(top.get("advice"), listing_scope)
        self._check_unknown_texts_cover(unknown_texts, fields_read)
        consult = self._consult_may_offer(top.get("consult_may_offer"), {line.id: path for line, path in advice})
        referral = self._referral(top.get("referral"))
        if self.problems:
            return None

        rules = [self._mark_sport_list_readers(rule, causes) for rule in rules]
        return RuleSet(
            version=version,
            settings=MappingProxyType(dict(self.settings)),
            rules=tuple(rules),
            unknown_answer_texts=MappingProxyType(unknown_texts),
            joint_locations=joint,
            soft_tissue_locations=soft_tissue,
            possible_causes=tuple(causes),
            notes=tuple(notes),
            advice_lines=tuple(line for line, _ in advice),
            consult_options=consult.options,
            consult_line=consult.line,
            consult_levels=consult.levels,
            referral_by_level=MappingProxyType(referral),
            content=MappingProxyType(dict(top)),
            high_impact_sports=sports,
            texts=MappingProxyType(dict(self.texts)),
            consult_id=consult.id,
            consult_option_ids=consult.option_ids,
        )

    # -- settings and texts -------------------------------------------------

    def _settings(self, node: object) -> None:
        settings = checking.mapping(self.problems, node, "settings", REQUIRED_SETTINGS, optional=_keys(node))
        if settings is None:
            return
        for name, value in settings.items():
            path = f"settings.{name}"
            if not (isinstance(name, str) and _SNAKE_ID.fullmatch(name)):
                self.problems.add(path, "setting names are lower_snake_case")
                continue
            self.settings[name] = self._setting_value(value, path, REQUIRED_SETTINGS.get(name, (0, None)))

    def _setting_value(self, value: object, path: str, bounds: tuple[int, int | None]) -> int | None:
        if not isinstance(value, int) or isinstance(value, bool):
            self.problems.add(path, f"expected a whole number, got {describe(value)}")
            return None
        low, high = bounds
        if value < low or (high is not None and value > high):
            allowed = f"{low}..{high}" if high is not None else f">= {low}"
            self.problems.add(path, f"{value} is out of range ({allowed})")
            return None
        return value

    def _text(self, node: object, path: str) -> str | None:
        """Non-empty text with its {setting} placeholders filled in."""
        text = checking.text(self.problems, node, path)
        if text is None:
            return None
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as error:
            self.problems.add(path, f"bad {{placeholder}} ({error}); write {{{{ or }}}} for a brace")
            return None
        unknown = [name for name in names if name not in self.settings]
        for name in unknown:
            self.problems.add(path, f"unknown setting {{{name}}} in text")
        if unknown or any(self.settings[name] is None for name in names):
            return None
        try:
            return text.format_map(self.settings)
        except (ValueError, TypeError) as error:
            self.problems.add(path, f"bad {{placeholder}} ({error})")
            return None

    def _patient_text(self, node: object, path: str, context: str) -> str | None:
        """As _text, for a text a patient reads: kept, as written, under its context."""
        text = self._text(node, path)
        if text is not None:
            self.texts[context] = node
        return text

    def _text_id(self, node: object, path: str, first_seen: dict[str, str]) -> str | None:
        """The stable id of a patient-facing text (its translations are found by it)."""
        return self._id(node, path, _TEXT_ID, "kebab-case", first_seen)

    def _unknown_answers(self, node: object) -> dict[str, str]:
        texts = checking.mapping(self.problems, node, "unknown_answers", (), optional=_keys(node))
        result: dict[str, str] = {}
        for name, value in (texts or {}).items():
            path = f"unknown_answers.{name}"
            if name not in FIELDS:
                self.problems.add(path, f"unknown field {describe(name)}")
                continue
            text = self._patient_text(value, path, text_ids.unknown_answer(name))
            if text is not None:
                result[name] = text
        return result

    def _check_unknown_texts_cover(self, texts: Mapping[str, str], fields_read: Mapping[str, str]) -> None:
        for name, where in fields_read.items():
            if name not in texts:
                self.problems.add(f"unknown_answers.{name}",
                                  f"missing: {where} reads this field, and a reason must be able "
                                  "to say when its answer was unknown")

    def _high_impact_sports(self, node: object) -> HighImpactSports | None:
        """`high_impact_sports: {words: [...], answer_overridden: "... {word} ..."}`."""
        path = "high_impact_sports"
        self.word_lists[path] = None
        problems_before = len(self.problems.items)
        fields = checking.mapping(self.problems, node, path, ("words", "answer_overridden"))
        if fields is None:
            return None
        phrases: list[tuple[str, ...]] = []
        seen: dict[tuple[str, ...], str] = {}
        for i, entry in enumerate(checking.sequence(self.problems, fields.get("words"), f"{path}.words") or []):
            item_path = f"{path}.words[{i}]"
            if checking.text(self.problems, entry, item_path) is None:
                continue
            words = words_of(entry)
            if not words:
                self.problems.add(item_path, f"{entry!r} has no letters or digits to match")
            elif words in seen:
                self.problems.add(item_path, f"{entry!r} matches the same words as {seen[words]}")
            else:
                seen[words] = item_path
                phrases.append(words)
        overridden = checking.text(self.problems, fields.get("answer_overridden"), f"{path}.answer_overridden")
        if overridden is not None and WORD_PLACEHOLDER not in overridden:
            self.problems.add(f"{path}.answer_overridden",
                              f"must name the sport found with {WORD_PLACEHOLDER} (e.g. \"{WORD_PLACEHOLDER} is "
                              "counted as high-impact\")")
            overridden = None
        if len(self.problems.items) > problems_before:
            return None
        self.texts[text_ids.SPORT_OVERRODE_ANSWER] = overridden
        condition = OnList(SPORT_FIELD, path, tuple(phrases))
        self.word_lists[path] = tuple(phrases)
        return HighImpactSports(condition, overridden)

    @staticmethod
    def _review(problems: Problems, fields: Mapping, path: str) -> bool:
        if CLINICIAN_REVIEW not in fields:
            return False
        if fields[CLINICIAN_REVIEW] != REVIEW_REQUIRED:
            problems.add(f"{path}.{CLINICIAN_REVIEW}",
                         f"expected {REVIEW_REQUIRED!r}, got {describe(fields[CLINICIAN_REVIEW])}")
            return False
        return True

    # -- rules --------------------------------------------------------------

    def _rules(self, node: object) -> tuple[list[Rule], dict[str, str], dict[str, tuple[str, object]]]:
        scope = ConditionScope(self.problems, self.settings, word_lists=self.word_lists)
        variant_nodes: dict[str, tuple[str, object]] = {}   # rule id -> (path, reasons_when node)
        entries = checking.sequence(self.problems, node, "rules") or []
        rules: list[Rule] = []
        first_seen: dict[str, str] = {}
        fallbacks: list[str] = []
        for index, entry in enumerate(entries):
            path = f"rules[{index}]"
            fields = checking.mapping(self.problems, entry, path, ("id", "level", "when", "reason", "source"),
                                      optional=("reasons_when", CLINICIAN_REVIEW))
            if fields is None:
                continue
            rule_id = self._id(fields.get("id"), f"{path}.id", _RULE_ID, "UPPER-KEBAB-CASE", first_seen)
            level = checking.one_of(self.problems, fields.get("level"), f"{path}.level", CARE_LEVELS, "level")
            condition = self._rule_when(fields.get("when"), f"{path}.when", scope)
            reason = self._text(fields.get("reason"), f"{path}.reason")
            if rule_id is not None and reason is not None:
                self.texts[text_ids.reason(rule_id)] = fields["reason"]
            source = checking.sources(self.problems, fields.get("source"), f"{path}.source")
            review = self._review(self.problems, fields, path)
            if condition is _FALLBACK:
                fallbacks.append(path)
            if None not in (rule_id, level, condition, reason):
                rules.append(Rule(rule_id, level, None if condition is _FALLBACK else condition, reason, source,
                                  clinician_review=review))
                if "reasons_when" in fields:
                    variant_nodes[rule_id] = (f"{path}.reasons_when", fields["reasons_when"])
        if entries and len(fallbacks) != 1:
            found = ", ".join(fallbacks) if fallbacks else "none"
            self.problems.add("rules", f"exactly one rule must have `when: {OTHERWISE}` "
                                       f"(what applies when no other rule fires); found {found}")
        return rules, scope.fields_read, variant_nodes

    def _reasons_when(self, rules: list[Rule], variant_nodes: Mapping[str, tuple[str, object]],
                      scope: ConditionScope) -> list[Rule]:
        """`reasons_when: [{id: <kebab-id>, when: <condition>, reason: <text>}, ...]`: the first
        met wins. Ids are unique in the file, so a decision's `reason_id` names one alone."""
        result = []
        first_seen: dict[str, str] = {}
        for rule in rules:
            if rule.id not in variant_nodes:
                result.append(rule)
                continue
            path, node = variant_nodes[rule.id]
            variants = []
            for i, entry in enumerate(checking.sequence(self.problems, node, path) or []):
                entry_path = f"{path}[{i}]"
                fields = checking.mapping(self.problems, entry, entry_path, ("id", "when", "reason"))
                if fields is None:
                    continue
                variant_id = self._text_id(fields.get("id"), f"{entry_path}.id", first_seen)
                condition = self._listing_when(fields.get("when"), f"{entry_path}.when", scope, allow_always=False)
                reason = self._text(fields.get("reason"), f"{entry_path}.reason")
                if None not in (variant_id, condition, reason):
                    self.texts[text_ids.reason(rule.id, variant_id)] = fields["reason"]
                    # reads_sport_list is set once the causes are known
                    variants.append(ReasonVariant(variant_id, condition, reason))
            result.append(replace(rule, reasons_when=tuple(variants)))
        return result

    def _mark_sport_list_readers(self, rule: Rule, causes: list[PossibleCause]) -> Rule:
        cause_conditions = {cause.id: cause.condition for cause in causes}

        def reads(condition: Condition | None) -> bool:
            for part in parts_of(condition) if condition is not None else ():
                if isinstance(part, OnList):
                    return True
                if isinstance(part, CauseListed) and reads(cause_conditions.get(part.cause_id)):
                    return True
            return False

        return replace(rule, reads_sport_list=reads(rule.condition),
                       reasons_when=tuple(replace(variant, reads_sport_list=reads(variant.condition))
                                          for variant in rule.reasons_when))

    def _rule_when(self, node: object, path: str, scope: ConditionScope) -> object:
        if node == OTHERWISE:
            return _FALLBACK
        if node == ALWAYS:
            self.problems.add(path, f"`{ALWAYS}` is for possible causes and notes; a rule needs a "
                                    f"condition, or `{OTHERWISE}`")
            return None
        if isinstance(node, str):
            self.problems.add(path, f"unknown keyword {node!r} (use a condition, or `{OTHERWISE}`)")
            return None
        return parse_condition(node, path, scope)

    def _id(self, node: object, path: str, pattern: re.Pattern, style: str, first_seen: dict[str, str]) -> str | None:
        if not (isinstance(node, str) and pattern.fullmatch(node)):
            self.problems.add(path, f"expected an id in {style}, got {describe(node)}")
            return None
        if node in first_seen:
            self.problems.add(path, f"duplicate id {node!r} (first used at {first_seen[node]})")
            return None
        first_seen[node] = path.removesuffix(".id")   # name the entry, not its id key
        return node

    # -- what every decision also carries -------------------------------------

    def _likely_source(self, node: object) -> tuple[Condition | None, Condition | None]:
        groups = checking.mapping(self.problems, node, "likely_source", ("joint", "soft_tissue"))
        if groups is None:
            return None, None
        owner: dict[str, str] = {}
        conditions: dict[str, Condition | None] = {}
        for group in ("joint", "soft_tissue"):
            path = f"likely_source.{group}"
            fields = checking.mapping(self.problems, groups.get(group), path, ("locations", "source"))
            conditions[group] = None
            if fields is None:
                continue
            checking.sources(self.problems, fields.get("source"), f"{path}.source")
            locations = checking.sequence(self.problems, fields.get("locations"), f"{path}.locations") or []
            mine = set()
            for i, location in enumerate(locations):
                item_path = f"{path}.locations[{i}]"
                if checking.one_of(self.problems, location, item_path, LOCATIONS, "location") is None:
                    continue
                if location in owner:
                    self.problems.add(item_path, f"{location!r} is already in likely_source.{owner[location]}")
                    continue
                owner[location] = group
                mine.add(location)
            if mine:
                conditions[group] = IncludesAny("pain.locations", frozenset(mine))
        for location in LOCATIONS:
            if location not in owner:
                self.problems.add("likely_source", f"location {location!r} belongs to no group")
        return conditions["joint"], conditions["soft_tissue"]

    def _possible_causes(self, node: object) -> tuple[list[PossibleCause], frozenset[str]]:
        scope = ConditionScope(self.problems, self.settings, word_lists=self.word_lists)
        entries = checking.sequence(self.problems, node, "possible_causes") or []
        causes: list[PossibleCause] = []
        first_seen: dict[str, str] = {}
        for index, entry in enumerate(entries):
            path = f"possible_causes[{index}]"
            fields = checking.mapping(self.problems, entry, path, ("id", "name", "when", "source"))
            if fields is None:
                continue
            cause_id = self._id(fields.get("id"), f"{path}.id", _SNAKE_ID, "lower_snake_case", first_seen)
            name = self._text(fields.get("name"), f"{path}.name")
            condition = self._listing_when(fields.get("when"), f"{path}.when", scope)
            source = checking.sources(self.problems, fields.get("source"), f"{path}.source")
            if None not in (cause_id, name, condition):
                causes.append(PossibleCause(cause_id, name, condition, source))
        # ids of refused entries count too, so notes do not repeat the problem
        return causes, frozenset(first_seen)

    def _notes(self, node: object, cause_ids: frozenset[str]) -> tuple[list[Note], frozenset[str]]:
        scope = ConditionScope(self.problems, self.settings, cause_ids=cause_ids, word_lists=self.word_lists)
        entries = checking.sequence(self.problems, node, "notes", allow_empty=True) or []
        notes: list[Note] = []
        first_seen: dict[str, str] = {}
        for index, entry in enumerate(entries):
            path = f"notes[{index}]"
            fields = checking.mapping(self.problems, entry, path, ("id", "text", "when", "source"))
            if fields is None:
                continue
            note_id = self._id(fields.get("id"), f"{path}.id", _SNAKE_ID, "lower_snake_case", first_seen)
            text = self._text(fields.get("text"), f"{path}.text")
            condition = self._listing_when(fields.get("when"), f"{path}.when", scope)
            source = checking.sources(self.problems, fields.get("source"), f"{path}.source")
            if None not in (note_id, text, condition):
                notes.append(Note(note_id, text, condition, source))
        return notes, frozenset(first_seen)

    def _listing_when(self, node: object, path: str, scope: ConditionScope,
                      allow_always: bool = True) -> Condition | None:
        if node == ALWAYS and allow_always:
            return Always()
        if node == OTHERWISE:
            self.problems.add(path, f"`{OTHERWISE}` is for rules only; use a condition or `{ALWAYS}`")
            return None
        if isinstance(node, str):
            hint = f"a condition, or `{ALWAYS}`" if allow_always else "a condition"
            self.problems.add(path, f"unknown keyword {node!r} (use {hint})")
            return None
        return parse_condition(node, path, scope)

    # -- advice, consult, referral ------------------------------------------

    def _levels(self, node: object, path: str) -> frozenset[str]:
        entries = checking.sequence(self.problems, node, path) or []
        levels = [checking.one_of(self.problems, level, f"{path}[{i}]", CARE_LEVELS, "level")
                  for i, level in enumerate(entries)]
        return frozenset(level for level in levels if level is not None)

    def _advice(self, node: object, scope: ConditionScope) -> list[tuple[AdviceLine, str]]:
        """The advice lines, each with its path."""
        entries = checking.sequence(self.problems, node, "advice") or []
        advice = []
        first_seen: dict[str, str] = {}
        for index, entry in enumerate(entries):
            path = f"advice[{index}]"
            fields = checking.mapping(self.problems, entry, path, ("id", "text", "levels"),
                                      optional=("source", "when", "unless", CLINICIAN_REVIEW, SAFETY_NETTING))
            if fields is None:
                continue
            advice_id = self._text_id(fields.get("id"), f"{path}.id", first_seen)
            text = (self._patient_text(fields.get("text"), f"{path}.text", text_ids.advice(advice_id))
                    if advice_id is not None else self._text(fields.get("text"), f"{path}.text"))
            safety_netting = SAFETY_NETTING in fields
            if safety_netting and fields[SAFETY_NETTING] is not True:
                self.problems.add(f"{path}.{SAFETY_NETTING}",
                                  f"expected true (or leave it out), got {describe(fields[SAFETY_NETTING])}")
            levels = self._levels(fields.get("levels"), f"{path}.levels")
            if "source" in fields:
                checking.sources(self.problems, fields["source"], f"{path}.source")
            review = self._review(self.problems, fields, path)
            if "source" not in fields and not review and CLINICIAN_REVIEW not in fields:
                self.problems.add(path, f"advice without a source sentence must say "
                                        f"`{CLINICIAN_REVIEW}: {REVIEW_REQUIRED}`")
            when = unless = None
            if "when" in fields:
                when = self._listing_when(fields["when"], f"{path}.when", scope, allow_always=False)
            if "unless" in fields:
                unless = self._listing_when(fields["unless"], f"{path}.unless", scope, allow_always=False)
            if advice_id is not None and text is not None:
                advice.append((AdviceLine(advice_id, text, levels, when, unless, review, safety_netting), path))
        return advice

    def _consult_may_offer(self, node: object, advice_ids: Mapping[str, str]) -> _Consult:
        """`{id, levels, lead_in, options: [{id, name, source}, ...]}`; its id is the advice
        id of the line it makes, so it must differ from every advice line's."""
        path = "consult_may_offer"
        fields = checking.mapping(self.problems, node, path, ("id", "levels", "lead_in", "options"))
        if fields is None:
            return _Consult("", frozenset(), "", (), ())
        consult_id = self._text_id(fields.get("id"), f"{path}.id", dict(advice_ids)) or ""
        levels = self._levels(fields.get("levels"), f"{path}.levels")
        lead_in = self._patient_text(fields.get("lead_in"), f"{path}.lead_in", text_ids.CONSULT_LEAD_IN) or ""
        options, option_ids = [], []
        first_seen: dict[str, str] = {}
        for index, entry in enumerate(checking.sequence(self.problems, fields.get("options"),
                                                        f"{path}.options") or []):
            option_path = f"{path}.options[{index}]"
            option = checking.mapping(self.problems, entry, option_path, ("id", "name", "source"))
            if option is None:
                continue
            option_id = self._text_id(option.get("id"), f"{option_path}.id", first_seen)
            name = (self._patient_text(option.get("name"), f"{option_path}.name", text_ids.consult_option(option_id))
                    if option_id is not None else self._text(option.get("name"), f"{option_path}.name"))
            checking.sources(self.problems, option.get("source"), f"{option_path}.source")
            if option_id is not None and name is not None:
                options.append(name)
                option_ids.append(option_id)
        line = f"{lead_in} {', '.join(options)}."
        return _Consult(consult_id, levels, line, tuple(options), tuple(option_ids))

    def _referral(self, node: object) -> dict[str, ReferralTerms]:
        fields = checking.mapping(self.problems, node, "referral", LEVELS_WITH_REFERRAL)
        terms: dict[str, ReferralTerms] = {}
        for level in LEVELS_WITH_REFERRAL:
            if fields is None or level not in fields:
                continue
            path = f"referral.{level}"
            entry = checking.mapping(self.problems, fields[level], path, ("priority", "window_setting"))
            if entry is None:
                continue
            priority = checking.one_of(self.problems, entry.get("priority"), f"{path}.priority",
                                       REFERRAL_PRIORITIES, "priority")
            window = entry.get("window_setting")
            if not (isinstance(window, str) and window in self.settings):
                self.problems.add(f"{path}.window_setting", f"unknown setting {describe(window)}")
                continue
            if priority is not None and self.settings[window] is not None:
                terms[level] = ReferralTerms(priority, self.settings[window])
        return terms
