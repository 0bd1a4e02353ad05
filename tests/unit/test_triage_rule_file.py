"""The rule file: what the shipped one holds, and bad files refused naming the entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
import yaml

from services.triage.domain import RuleFileError, decide, default_rules_path, load_rules

TODAY = date(2026, 11, 26)
GUIDE = Path(__file__).resolve().parents[3] / "shared" / "clinical" / "hip-pain-guide.txt"

# The rule table of care-rules.md.
SPEC_RULES = {
    "URG-SEVERE": "urgent",
    "URG-SUDDEN": "urgent",
    "URG-TRAUMA": "urgent",
    "SPC-LOCKING": "specialist",
    "SPC-INSTABILITY": "specialist",
    "SPC-NOT-IMPROVING": "specialist",
    "SPC-PERSISTENT-PAIN": "specialist",
    "SPC-DYSFUNCTION": "specialist",
    "SPC-STRESS-FRACTURE": "specialist",   # added in 2026-12-1 (care-rules.md, rule table)
    "SELF-CARE": "self_care",
}


@pytest.fixture(scope="module")
def shipped_text() -> str:
    return default_rules_path().read_text(encoding="utf-8")


@pytest.fixture
def content(shipped_text) -> dict:
    return yaml.safe_load(shipped_text)


def as_text(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# -- the shipped file -----------------------------------------------------------------


def test_shipped_file_holds_the_rules_of_care_rules_md():
    rules = load_rules(default_rules_path())
    assert rules.version == "2026-12-2"
    assert {rule.id: rule.level for rule in rules.rules} == SPEC_RULES
    assert [rule.id for rule in rules.rules] == list(SPEC_RULES)
    assert rules.fallback.id == "SELF-CARE"
    assert all(rule.source and rule.reason for rule in rules.rules)


def test_thresholds_are_settings():
    rules = load_rules(default_rules_path())
    assert dict(rules.settings) == {"severe_pain_min": 7, "home_care_days_min": 14,
                                    "persistent_pain_days_min": 42, "stress_fracture_days_min": 14,
                                    "urgent_window_days": 2,
                                    "routine_window_days": 14}
    assert rules.referral_for("urgent").to_dict() == {"priority": "urgent", "within_days": 2}
    assert rules.referral_for("specialist").to_dict() == {"priority": "routine", "within_days": 14}
    assert rules.referral_for("self_care") is None
    assert rules.consult_options == ("diagnosis of the source of the pain", "medication",
                                     "corticosteroid injections", "trigger point injections", "nerve blocks")


def test_as_dict_is_the_file_content_json_ready_and_a_copy(shipped_text):
    rules = load_rules(default_rules_path())
    content = rules.as_dict()
    assert content == yaml.safe_load(shipped_text)
    assert json.loads(json.dumps(content)) == content
    content["rules"].clear()
    assert rules.as_dict()["rules"]


def _quotes(node) -> list[str]:
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            if key == "source" and isinstance(value, str):
                found.append(value)
            elif key == "source" and isinstance(value, list):
                found.extend(value)
            else:
                found.extend(_quotes(value))
        return found
    if isinstance(node, list):
        return [quote for item in node for quote in _quotes(item)]
    return []


def test_advice_without_a_source_and_the_stress_fracture_rule_are_marked_for_clinician_review(content):
    unsourced = [line["text"][:40] for line in content["advice"] if "source" not in line]
    assert len(unsourced) == 4   # stop running, and the safety-netting of the three levels
    assert all(line.get("clinician_review") == "required" for line in content["advice"] if "source" not in line)
    assert rule(content, "SPC-STRESS-FRACTURE")["clinician_review"] == "required"
    rules = load_rules(default_rules_path())
    by_id = {r.id: r for r in rules.rules}
    assert by_id["SPC-STRESS-FRACTURE"].clinician_review and not by_id["URG-SEVERE"].clinician_review
    assert by_id["SPC-STRESS-FRACTURE"].source == (
        "High-impact, repetitive motion in sports can cause small cracks in the femoral neck.",
        "Physicians use physical exams and imaging studies, such as X-rays or MRIs, to identify underlying issues.")


def test_the_high_impact_sports_list_holds_at_least_those_of_care_rules_md(content):
    listed = {word.lower() for word in content["high_impact_sports"]["words"]}
    assert {"running", "jogging", "sprinting", "athletics", "track", "cross-country", "marathon", "triathlon",
            "football", "soccer", "rugby", "hockey", "basketball", "volleyball", "netball", "tennis", "squash",
            "handball", "dance", "gymnastics", "jumping"} <= listed


def test_the_previous_version_still_loads_for_previews():
    history = Path(__file__).resolve().parents[2] / "services/triage/rules/history/care-rules-2026-11-1.yaml"
    old = load_rules(history)
    assert old.version == "2026-11-1"
    assert "SPC-STRESS-FRACTURE" not in {r.id for r in old.rules}
    assert old.high_impact_sports is None


def test_every_source_is_quoted_word_for_word_from_the_guide(content):
    guide = GUIDE.read_text(encoding="utf-8")
    quotes = _quotes(content)
    assert len(quotes) > 20
    assert [quote for quote in quotes if quote not in guide] == []


@pytest.mark.parametrize("how", ["path", "str-path", "traversable", "text"])
def test_loads_from_a_path_or_from_text(tmp_path, shipped_text, how):
    copy = tmp_path / "rules.yaml"
    copy.write_text(shipped_text, encoding="utf-8")
    source = {"path": copy, "str-path": str(copy), "traversable": default_rules_path(),
              "text": shipped_text}[how]
    assert load_rules(source).as_dict() == yaml.safe_load(shipped_text)


def test_a_setting_changes_the_decision_without_code(content):
    content["settings"]["severe_pain_min"] = 8
    rules = load_rules(as_text(content))
    body = {"pain": {"locations": ["groin"], "side": "left", "severity": 7, "onset": "gradual",
                     "started_on": "2026-11-20", "direct_trauma": False},
            "function": {"joint_locking": False, "instability": False, "persistent_dysfunction": False},
            "home_care": {"measures": [], "days": 0, "improving": "not_tried"},
            "activity": {"sport": "running", "high_impact": False}}
    assert decide(body, rules, TODAY).care_level == "self_care"
    body["pain"]["severity"] = 8
    decision = decide(body, rules, TODAY)
    assert decision.care_level == "urgent"
    assert "8 or more out of 10" in decision.fired[0].reason


# -- bad files are refused, naming the entry ------------------------------------------------


def rule(content: dict, rule_id: str) -> dict:
    return next(entry for entry in content["rules"] if entry["id"] == rule_id)


def _set(path: str, value) -> Callable[[dict], None]:
    """A change to the content at a dotted path with [i] indexes."""
    def change(content: dict) -> None:
        *parents, last = _steps(path)
        node = content
        for step in parents:
            node = node[step]
        node[last] = value
    return change


def _delete(path: str) -> Callable[[dict], None]:
    def change(content: dict) -> None:
        *parents, last = _steps(path)
        node = content
        for step in parents:
            node = node[step]
        del node[last]
    return change


def _steps(path: str) -> list:
    steps = []
    for part in path.split("."):
        name, *indexes = part.replace("]", "").split("[")
        steps.append(name)
        steps.extend(int(index) for index in indexes)
    return steps


BAD_FILES = [
    pytest.param(_set("rules[0].when.op", "=>"), "rules[0].when.op: unknown operator '=>'", id="unknown-op"),
    pytest.param(_set("rules[5].when.all[0].op", "=="), "rules[5].when.all[0].op: unknown operator '=='",
                 id="unknown-op-nested"),
    pytest.param(_set("rules[2].level", "emergency"), "rules[2].level: unknown level 'emergency'",
                 id="unknown-level"),
    pytest.param(_delete("rules[4].reason"), "rules[4].reason: missing", id="missing-reason"),
    pytest.param(_set("rules[4].reason", "  "), "rules[4].reason: expected non-empty text", id="empty-reason"),
    pytest.param(_delete("rules[1].source"), "rules[1].source: missing", id="missing-source"),
    pytest.param(_set("rules[4].id", "SPC-LOCKING"),
                 "rules[4].id: duplicate id 'SPC-LOCKING' (first used at rules[3])", id="duplicate-id"),
    pytest.param(_set("settings.severe_pain_min", "7"),
                 "settings.severe_pain_min: expected a whole number, got '7' (str)", id="threshold-text"),
    pytest.param(_set("settings.home_care_days_min", 14.5),
                 "settings.home_care_days_min: expected a whole number, got 14.5 (float)", id="threshold-float"),
    pytest.param(_set("settings.persistent_pain_days_min", True),
                 "settings.persistent_pain_days_min: expected a whole number, got True (bool)",
                 id="threshold-bool"),
    pytest.param(_set("settings.severe_pain_min", 11), "settings.severe_pain_min: 11 is out of range (1..10)",
                 id="threshold-out-of-range"),
    pytest.param(_delete("settings.urgent_window_days"), "settings.urgent_window_days: missing",
                 id="missing-setting"),
    pytest.param(_set("rules[0].when.setting", "severe_pain_mni"),
                 "rules[0].when.setting: unknown setting 'severe_pain_mni'", id="unknown-setting"),
    pytest.param(_set("rules[0].when.field", "pain.severe"), "rules[0].when.field: unknown field 'pain.severe'",
                 id="unknown-field"),
    pytest.param(_set("rules[3].when.is", "true"), "rules[3].when.is: unknown test 'true' (str)",
                 id="is-true-not-allowed"),
    pytest.param(_set("rules[3].when", {"field": "function.joint_locking", "op": ">=", "setting": "severe_pain_min"}),
                 "rules[3].when: function.joint_locking is a yes/no field: test it with is", id="test-of-wrong-kind"),
    pytest.param(_set("rules[1].when.in", ["abrupt"]),
                 "rules[1].when.in[0]: unknown value for pain.onset 'abrupt'", id="unknown-choice-value"),
    pytest.param(_set("rules[5].when.all[1].in", [False]), "(quote yes/no in YAML)", id="unquoted-no"),
    pytest.param(_set("rules[5].when", {"all": []}), "rules[5].when.all: must not be empty", id="empty-all"),
    pytest.param(_set("rules[5].when", {"some": []}),
                 "rules[5].when: expected a condition with one of: all, any, field, cause", id="unknown-combinator"),
    pytest.param(_set("rules[0].when.cause", "bursitis"), "rules[0].when.cause: `cause:` may only be used in notes",
                 id="cause-in-rule"),
    pytest.param(_set("notes[0].when.any[0].cause", "fracture"),
                 "notes[0].when.any[0].cause: unknown possible cause 'fracture'", id="unknown-cause"),
    # 2026-12-1 put SPC-STRESS-FRACTURE at rules[8]: the fallback (SELF-CARE) is rules[9] now
    pytest.param(_set("rules[9].when", "always"), "rules[9].when: `always` is for possible causes and notes",
                 id="always-in-rule"),
    pytest.param(_set("rules[9].when", {"field": "pain.severity", "op": "<", "setting": "severe_pain_min"}),
                 "rules: exactly one rule must have `when: otherwise`", id="no-fallback"),
    pytest.param(_set("rules[7].when", "otherwise"),
                 "found rules[7], rules[9]", id="two-fallbacks"),
    pytest.param(_set("possible_causes[0].when", "otherwise"),
                 "possible_causes[0].when: `otherwise` is for rules only", id="otherwise-in-cause"),
    pytest.param(_set("rules[2].reasn", "typo"), "rules[2].reasn: unknown key", id="unknown-key-in-rule"),
    pytest.param(_set("rule_version", "x"), "rule_version: unknown key", id="unknown-top-level-key"),
    pytest.param(_set("rules_version", 2026), "rules_version: expected non-empty text, got 2026 (int)",
                 id="version-not-text"),
    pytest.param(_set("rules[0].reason", "Pain of {severe_pain} or more."),
                 "rules[0].reason: unknown setting {severe_pain} in text", id="unknown-placeholder"),
    pytest.param(_set("rules[0].reason", "Pain of {severe_pain_min or more."),
                 "rules[0].reason: bad {placeholder}", id="broken-placeholder"),
    pytest.param(lambda content: content["unknown_answers"].pop("function.joint_locking"),
                 "unknown_answers.function.joint_locking: missing: rules[3].when reads this field",
                 id="missing-unknown-answer-text"),
    pytest.param(_set("likely_source.joint.locations", ["groin"]),
                 "likely_source: location 'inner_hip' belongs to no group", id="unmapped-location"),
    pytest.param(_set("likely_source.soft_tissue.locations", ["outer_hip", "upper_thigh", "buttock", "groin"]),
                 "likely_source.soft_tissue.locations[3]: 'groin' is already in likely_source.joint",
                 id="location-in-two-groups"),
    pytest.param(_set("referral.specialist.priority", "soon"), "referral.specialist.priority: unknown priority 'soon'",
                 id="unknown-priority"),
    pytest.param(_set("advice[0].levels", ["urgent", "asap"]), "advice[0].levels[1]: unknown level 'asap'",
                 id="unknown-advice-level"),
    pytest.param(_set("rules", []), "rules: must not be empty", id="no-rules"),
    # 2026-12-1: the sports list, reasons_when, advice conditions and clinician review
    pytest.param(lambda c: _advice(c, "Come back")[0].pop("clinician_review"),
                 "advice without a source sentence must say `clinician_review: required`",
                 id="advice-without-source-or-review"),
    pytest.param(lambda c: _advice(c, "Stop running")[0].update(clinician_review="maybe"),
                 ".clinician_review: expected 'required', got 'maybe' (str)", id="review-not-required"),
    pytest.param(lambda c: rule(c, "SPC-STRESS-FRACTURE").update(clinician_review=True),
                 "rules[8].clinician_review: expected 'required', got True (bool)", id="rule-review-not-text"),
    pytest.param(_set("rules[8].when.all[2].any[1].on_list", "sports"),
                 "rules[8].when.all[2].any[1].on_list: unknown word list 'sports'", id="unknown-word-list"),
    pytest.param(_set("rules[8].when.all[2].any[1]", {"field": "activity.sport", "in": ["running"]}),
                 "rules[8].when.all[2].any[1]: activity.sport is a free text field: test it with on_list",
                 id="sport-tested-like-a-choice"),
    pytest.param(_set("high_impact_sports.words[1]", "  "), "high_impact_sports.words[1]: expected non-empty text",
                 id="empty-sport"),
    pytest.param(_set("high_impact_sports.words[1]", "--"), "high_impact_sports.words[1]: '--' has no letters",
                 id="sport-without-letters"),
    pytest.param(_set("high_impact_sports.words[1]", "RUNNING"),
                 "high_impact_sports.words[1]: 'RUNNING' matches the same words as high_impact_sports.words[0]",
                 id="sport-listed-twice"),
    pytest.param(_set("high_impact_sports.answer_overridden", "you answered not high-impact"),
                 "high_impact_sports.answer_overridden: must name the sport found with {word}",
                 id="override-text-without-word"),
    pytest.param(_set("rules[9].reasons_when[0].when", {"cause": "fracture"}),
                 "rules[9].reasons_when[0].when.cause: unknown possible cause 'fracture'",
                 id="reason-variant-unknown-cause"),
    pytest.param(_set("rules[9].reasons_when[1].when", {"note": "xray"}),
                 "rules[9].reasons_when[1].when.note: unknown note 'xray'", id="reason-variant-unknown-note"),
    pytest.param(_set("rules[9].reasons_when[0].reason", "Under {stress_days} days."),
                 "rules[9].reasons_when[0].reason: unknown setting {stress_days} in text", id="reason-variant-placeholder"),
    pytest.param(_set("rules[0].when", {"note": "imaging"}),
                 "rules[0].when.note: `note:` may only be used in advice and in a rule's reasons_when",
                 id="note-in-rule-condition"),
    pytest.param(lambda c: _advice(c, "Stop running")[0].update(when="always"),
                 "unknown keyword 'always' (use a condition)", id="advice-when-always"),
    pytest.param(lambda c: c["unknown_answers"].pop("activity.sport"),
                 "unknown_answers.activity.sport: missing: rules[8].when.all[2].any[1] reads this field",
                 id="missing-unknown-sport-text"),
    # 2026-12-2 (issue 18): the ids translations are found by
    pytest.param(lambda c: c["advice"][4].pop("id"), "advice[4].id: missing", id="advice-without-id"),
    pytest.param(_set("advice[5].id", "ice"), "advice[5].id: duplicate id 'ice' (first used at advice[4])",
                 id="advice-id-twice"),
    pytest.param(_set("advice[4].id", "Ice_Pack"), "advice[4].id: expected an id in kebab-case, got 'Ice_Pack'",
                 id="advice-id-not-kebab-case"),
    pytest.param(_set("consult_may_offer.id", "ice"),
                 "consult_may_offer.id: duplicate id 'ice' (first used at advice[4])",
                 id="consult-id-same-as-an-advice-id"),
    pytest.param(lambda c: c["consult_may_offer"].pop("id"), "consult_may_offer.id: missing", id="consult-without-id"),
    pytest.param(lambda c: c["consult_may_offer"]["options"][2].pop("id"), "consult_may_offer.options[2].id: missing",
                 id="consult-option-without-id"),
    pytest.param(_set("consult_may_offer.options[4].id", "medication"),
                 "consult_may_offer.options[4].id: duplicate id 'medication' (first used at consult_may_offer.options[1])",
                 id="consult-option-id-twice"),
    pytest.param(lambda c: rule(c, "SELF-CARE")["reasons_when"][1].pop("id"), "rules[9].reasons_when[1].id: missing",
                 id="reason-variant-without-id"),
    pytest.param(_set("rules[9].reasons_when[1].id", "stress-fracture-too-early"),
                 "rules[9].reasons_when[1].id: duplicate id 'stress-fracture-too-early' (first used at "
                 "rules[9].reasons_when[0])", id="reason-variant-id-twice"),
    pytest.param(_set("rules[9].reasons_when[0].id", "SELF-CARE"),
                 "rules[9].reasons_when[0].id: expected an id in kebab-case, got 'SELF-CARE'",
                 id="reason-variant-id-like-a-rule-id"),
    pytest.param(lambda c: _advice(c, "Come back")[0].update(safety_netting="yes"),
                 "advice[8].safety_netting: expected true (or leave it out), got 'yes' (str)",
                 id="safety-netting-not-true"),
]


def _advice(content: dict, starts: str) -> list[dict]:
    return [line for line in content["advice"] if line["text"].startswith(starts)]


@pytest.mark.parametrize(("change", "expected"), BAD_FILES)
def test_bad_rule_file_is_refused_naming_the_entry(content, change, expected):
    change(content)
    with pytest.raises(RuleFileError) as refused:
        load_rules(as_text(content))
    assert expected in str(refused.value)
    assert any(expected in problem for problem in refused.value.problems)


def test_every_problem_is_listed_at_once(content):
    content["rules"][0]["when"]["op"] = "=>"
    content["rules"][2]["level"] = "emergency"
    content["settings"]["routine_window_days"] = "two weeks"
    with pytest.raises(RuleFileError) as refused:
        load_rules(as_text(content))
    assert len(refused.value.problems) == 3
    message = str(refused.value)
    for expected in ("rules[0].when.op", "rules[2].level", "settings.routine_window_days"):
        assert expected in message


def test_a_refused_setting_is_reported_once_not_at_every_use(content):
    content["settings"]["severe_pain_min"] = "seven"
    with pytest.raises(RuleFileError) as refused:
        load_rules(as_text(content))
    assert refused.value.problems == ["settings.severe_pain_min: expected a whole number, got 'seven' (str)"]


@pytest.mark.parametrize(("text", "expected"), [
    ("rules_version: '1'\nrules_version: '2'\n", "duplicate key 'rules_version'"),
    ("rules: [\n  {id: X\n", "line "),
    ("- just\n- a list\n", "rule file: expected a mapping"),
    ("\n", "rule file: expected a mapping, got None"),
])
def test_unreadable_yaml_is_refused(text, expected):
    with pytest.raises(RuleFileError) as refused:
        load_rules(text)
    assert expected in str(refused.value)


def test_duplicate_key_inside_a_rule_is_refused(shipped_text):
    doubled = shipped_text.replace("  - id: URG-SUDDEN\n", "  - id: URG-SUDDEN\n    id: URG-SUDDEN-2\n", 1)
    with pytest.raises(RuleFileError, match="duplicate key 'id'"):
        load_rules(doubled)


def test_a_missing_file_is_refused_with_its_path(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(RuleFileError, match="nowhere.yaml"):
        load_rules(missing)


def test_something_that_is_neither_path_nor_text_is_a_type_error():
    with pytest.raises(TypeError):
        load_rules(42)


def test_every_patient_facing_text_has_a_stable_id_and_the_safety_netting_is_marked():
    """Issue 18: translations are found by these ids (and the English text)."""
    rules = load_rules(default_rules_path())
    assert [line.id for line in rules.advice_lines if line.safety_netting] == [
        "come-back-self-care", "urgent-safety-net", "waiting-safety-net"]
    assert all(line.text.startswith(("Come back", "Urgent means", "While you wait")) is line.safety_netting
               for line in rules.advice_lines)
    assert rules.consult_id == "consult-may-offer"
    assert rules.consult_option_ids == ("diagnosis", "medication", "corticosteroid-injections",
                                        "trigger-point-injections", "nerve-blocks")
    contexts = set(rules.texts)
    assert {f"reason:{rule.id}" for rule in rules.rules} <= contexts
    assert {"reason:SELF-CARE/stress-fracture-too-early", "reason:SELF-CARE/imaging-note", "sport-overrode-answer",
            "consult:lead-in"} <= contexts
    assert {f"unknown:{field}" for field in rules.unknown_answer_texts} <= contexts
    assert {f"advice:{line.id}" for line in rules.advice_lines} <= contexts
    # as written, {settings} not filled in: a translation fills them in the same way
    assert rules.texts["reason:URG-SEVERE"].startswith("Pain rated {severe_pain_min} or more")
