"""Every care rule, both sides of every threshold, the worked examples of
care-rules.md, and how "not sure", missing and unreadable answers are handled."""

from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta

import pytest

from services.triage.domain import Decision, decide, default_rules_path, load_rules

TODAY = date(2026, 11, 26)
DELETE = object()   # marks a key to remove from the baseline report


@pytest.fixture(scope="module")
def rules():
    return load_rules(default_rules_path())


def days_ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def report(changes: dict | None = None) -> dict:
    """A benign report that fires only SELF-CARE, with `{"section.key": value}` changes."""
    body = {
        "patient": {"mrn": "MRN-0042", "given_name": "Ana", "family_name": "Silva",
                    "birth_date": "1991-04-02", "phone": "+15550100"},
        "activity": {"sport": "cycling", "high_impact": False},
        "pain": {"locations": ["outer_hip"], "side": "left", "severity": 3, "onset": "gradual",
                 "started_on": days_ago(5), "direct_trauma": False},
        "function": {"joint_locking": False, "instability": False, "persistent_dysfunction": False},
        "home_care": {"measures": [], "days": 0, "improving": "not_tried"},
    }
    for dotted, value in (changes or {}).items():
        if "." not in dotted:
            if value is DELETE:
                del body[dotted]
            else:
                body[dotted] = value
            continue
        section, key = dotted.split(".")
        if value is DELETE:
            del body[section][key]
        else:
            body[section][key] = value
    return body


def tried(days: int, improving: str) -> dict:
    return {"home_care.measures": ["rest", "ice"], "home_care.days": days, "home_care.improving": improving}


def pain_for(days: int, **home_care) -> dict:
    return {"pain.started_on": days_ago(days), **home_care}


# -- one row per rule and per side of each threshold ---------------------------

# A suspected femoral-neck stress fracture: the baseline is gradual already
STRESS = {"pain.locations": ["groin"], "activity.high_impact": True, "activity.sport": "cycling"}

TABLE = [
    # (changes, level, fired ids)
    pytest.param({}, "self_care", ["SELF-CARE"], id="nothing-fires"),
    pytest.param({"pain.severity": 0}, "self_care", ["SELF-CARE"], id="severity-0"),
    pytest.param({"pain.severity": 6}, "self_care", ["SELF-CARE"], id="severity-6-below"),
    pytest.param({"pain.severity": 7}, "urgent", ["URG-SEVERE"], id="severity-7-at"),
    pytest.param({"pain.severity": 10}, "urgent", ["URG-SEVERE"], id="severity-10"),
    pytest.param({"pain.onset": "sudden"}, "urgent", ["URG-SUDDEN"], id="sudden-onset"),
    pytest.param({"pain.direct_trauma": True}, "urgent", ["URG-TRAUMA"], id="direct-trauma"),
    pytest.param({"function.joint_locking": True}, "specialist", ["SPC-LOCKING"], id="locking"),
    pytest.param({"function.instability": True}, "specialist", ["SPC-INSTABILITY"], id="instability"),
    pytest.param({"function.persistent_dysfunction": True}, "specialist", ["SPC-DYSFUNCTION"],
                 id="dysfunction"),
    pytest.param(tried(13, "no"), "self_care", ["SELF-CARE"], id="home-care-13-days-below"),
    pytest.param(tried(14, "no"), "specialist", ["SPC-NOT-IMPROVING"], id="home-care-14-days-at"),
    pytest.param(tried(60, "yes"), "self_care", ["SELF-CARE"], id="home-care-improving"),
    pytest.param(pain_for(41, **tried(5, "no")), "self_care", ["SELF-CARE"], id="pain-41-days-below"),
    pytest.param(pain_for(42, **tried(5, "no")), "specialist", ["SPC-PERSISTENT-PAIN"],
                 id="pain-42-days-at"),
    pytest.param(pain_for(42), "specialist", ["SPC-PERSISTENT-PAIN"], id="pain-42-days-not-tried"),
    pytest.param(pain_for(41), "self_care", ["SELF-CARE"], id="pain-41-days-not-tried"),
    pytest.param(pain_for(400, **tried(30, "yes")), "self_care", ["SELF-CARE"],
                 id="pain-long-but-improving"),
    pytest.param(pain_for(42, **tried(14, "no")), "specialist", ["SPC-NOT-IMPROVING", "SPC-PERSISTENT-PAIN"],
                 id="both-persistence-rules"),
    pytest.param({"pain.severity": 9, "function.instability": True, "pain.onset": "sudden"}, "urgent",
                 ["URG-SEVERE", "URG-SUDDEN", "SPC-INSTABILITY"], id="urgent-wins-over-specialist"),
    pytest.param({"function.persistent_dysfunction": True, "function.joint_locking": True,
                  "pain.direct_trauma": True}, "urgent",
                 ["URG-TRAUMA", "SPC-LOCKING", "SPC-DYSFUNCTION"], id="fired-in-rule-file-order"),
    # SPC-STRESS-FRACTURE (2026-12-1): groin or inner hip, gradual, high-impact, >= 14 days of pain
    pytest.param({**STRESS, **pain_for(13)}, "self_care", ["SELF-CARE"], id="stress-fracture-13-days-below"),
    pytest.param({**STRESS, **pain_for(14)}, "specialist", ["SPC-STRESS-FRACTURE"], id="stress-fracture-14-days-at"),
    pytest.param({**STRESS, **pain_for(14), "pain.locations": ["inner_hip"]}, "specialist",
                 ["SPC-STRESS-FRACTURE"], id="stress-fracture-inner-hip"),
    pytest.param({**STRESS, **pain_for(14), "pain.locations": ["outer_hip", "buttock"]}, "self_care",
                 ["SELF-CARE"], id="stress-fracture-not-in-groin-or-inner-hip"),
    pytest.param({**STRESS, **pain_for(30), "pain.onset": "sudden"}, "urgent", ["URG-SUDDEN"],
                 id="stress-fracture-needs-gradual-onset"),
    pytest.param({**STRESS, **pain_for(30), "activity.high_impact": False}, "self_care", ["SELF-CARE"],
                 id="stress-fracture-not-high-impact-cycling"),
    pytest.param({**STRESS, **pain_for(14), "activity.high_impact": False, "activity.sport": "Trail running"},
                 "specialist", ["SPC-STRESS-FRACTURE"], id="stress-fracture-sport-on-list-overrides-answer"),
    pytest.param({**STRESS, **pain_for(13), "activity.high_impact": False, "activity.sport": "Trail running"},
                 "self_care", ["SELF-CARE"], id="stress-fracture-sport-on-list-13-days-below"),
    pytest.param({**STRESS, **pain_for(400, **tried(60, "yes"))}, "specialist", ["SPC-STRESS-FRACTURE"],
                 id="stress-fracture-even-if-improving"),
]


@pytest.mark.parametrize(("changes", "level", "fired"), TABLE)
def test_rule_table(rules, changes, level, fired):
    decision = decide(report(changes), rules, TODAY)
    assert decision.care_level == level
    assert list(decision.fired_ids) == fired
    assert decision.rules_version == "2026-12-2"


def test_every_rule_of_the_file_is_covered_by_the_table(rules):
    fired_in_table = {rule_id for param in TABLE for rule_id in param.values[2]}
    assert fired_in_table == {rule.id for rule in rules.rules}


def test_reasons_are_plain_sentences_with_thresholds_filled_in(rules):
    decision = decide(report({"pain.severity": 7, **pain_for(50, **tried(20, "no"))}), rules, TODAY)
    reasons = {fired.id: fired.reason for fired in decision.fired}
    assert "7 or more out of 10" in reasons["URG-SEVERE"]
    assert "14 days" in reasons["SPC-NOT-IMPROVING"]
    assert "42 days" in reasons["SPC-PERSISTENT-PAIN"]
    assert all("{" not in reason and reason.endswith(".") for reason in reasons.values())


# -- interpretations ----------------------------------------------------------------


def test_not_tried_never_fires_not_improving(rules):
    # nothing tried cannot have failed; long pain with nothing tried is SPC-PERSISTENT-PAIN
    decision = decide(report({"home_care.days": 21, "home_care.improving": "not_tried"}), rules, TODAY)
    assert decision.fired_ids == ("SELF-CARE",)


def test_start_date_tomorrow_counts_as_zero_days(rules):
    decision = decide(report({"pain.started_on": (TODAY + timedelta(days=1)).isoformat(),
                              **tried(5, "no")}), rules, TODAY)
    assert decision.fired_ids == ("SELF-CARE",)


@pytest.mark.parametrize("started_on", [(TODAY + timedelta(days=2)).isoformat(), "2999-01-01"])
def test_start_date_later_than_tomorrow_is_unknown_and_counts_as_long_enough(rules, started_on):
    decision = decide(report({"pain.started_on": started_on, **tried(5, "no")}), rules, TODAY)
    assert decision.fired_ids == ("SPC-PERSISTENT-PAIN",)
    assert "pain start date missing or not plausible" in decision.fired[0].reason


def test_unknown_start_date_does_not_fire_when_the_pain_is_improving(rules):
    decision = decide(report({"pain.started_on": DELETE, **tried(5, "yes")}), rules, TODAY)
    assert decision.fired_ids == ("SELF-CARE",)


def test_duration_is_counted_up_to_the_given_day(rules):
    body = report(pain_for(41, **tried(5, "no")))
    assert decide(body, rules, TODAY).care_level == "self_care"
    assert decide(body, rules, TODAY + timedelta(days=1)).care_level == "specialist"


def test_today_must_be_a_date_not_a_datetime(rules):
    with pytest.raises(TypeError):
        decide(report(), rules, datetime(2026, 11, 26, 12, 0))


# -- "not sure", missing and unreadable answers ------------------------------------------

YES_NO_RULES = [
    ("pain.direct_trauma", "URG-TRAUMA", "urgent",
     "not sure whether there was a fall, collision or blow to the hip: treated as yes, to be safe"),
    ("function.joint_locking", "SPC-LOCKING", "specialist",
     "not sure whether the hip locks: treated as yes, to be safe"),
    ("function.instability", "SPC-INSTABILITY", "specialist",
     "not sure whether the hip gives way: treated as yes, to be safe"),
    ("function.persistent_dysfunction", "SPC-DYSFUNCTION", "specialist",
     "not sure whether running, walking or climbing stairs has been difficult for weeks: "
     "treated as yes, to be safe"),
]


@pytest.mark.parametrize("answer", [None, DELETE, "yes", 1], ids=["null", "missing", "text", "number"])
@pytest.mark.parametrize(("field", "rule_id", "level", "said"), YES_NO_RULES, ids=[r[1] for r in YES_NO_RULES])
def test_not_sure_missing_or_unreadable_yes_no_counts_as_yes(rules, field, rule_id, level, said, answer):
    decision = decide(report({field: answer}), rules, TODAY)
    assert decision.care_level == level
    assert decision.fired_ids == (rule_id,)
    assert said in decision.fired[0].reason


def test_a_definite_yes_does_not_mention_uncertainty(rules):
    decision = decide(report({"function.joint_locking": True}), rules, TODAY)
    assert "not sure" not in decision.fired[0].reason


@pytest.mark.parametrize("severity", [DELETE, None, "8", 11, -1, 7.5, True],
                         ids=["missing", "null", "text", "above-10", "negative", "fraction", "bool"])
def test_missing_or_unreadable_severity_counts_as_severe(rules, severity):
    decision = decide(report({"pain.severity": severity}), rules, TODAY)
    assert decision.care_level == "urgent"
    assert decision.fired_ids == ("URG-SEVERE",)
    assert "pain severity missing or unreadable: treated as severe, to be safe" in decision.fired[0].reason


@pytest.mark.parametrize("onset", [DELETE, None, "slowly"])
def test_missing_or_unreadable_onset_counts_as_sudden(rules, onset):
    decision = decide(report({"pain.onset": onset}), rules, TODAY)
    assert decision.fired_ids == ("URG-SUDDEN",)
    assert "treated as sudden, to be safe" in decision.fired[0].reason


def test_unknown_improving_counts_as_not_improving_but_a_definite_short_time_still_wins(rules):
    fourteen = decide(report({**tried(14, "no"), "home_care.improving": DELETE}), rules, TODAY)
    assert fourteen.fired_ids == ("SPC-NOT-IMPROVING",)
    assert "not known whether home care is helping" in fourteen.fired[0].reason
    thirteen = decide(report({**tried(13, "no"), "home_care.improving": None}), rules, TODAY)
    assert thirteen.fired_ids == ("SELF-CARE",)


def test_unknown_home_care_days_count_as_long_enough(rules):
    decision = decide(report({**tried(0, "no"), "home_care.days": "three weeks"}), rules, TODAY)
    assert decision.fired_ids == ("SPC-NOT-IMPROVING",)
    assert "days of home care missing or unreadable" in decision.fired[0].reason


def test_a_missing_section_makes_all_its_questions_unknown(rules):
    decision = decide(report({"function": DELETE}), rules, TODAY)
    assert decision.fired_ids == ("SPC-LOCKING", "SPC-INSTABILITY", "SPC-DYSFUNCTION")


def test_an_empty_report_is_urgent_never_self_care(rules):
    decision = decide({}, rules, TODAY)
    assert decision.care_level == "urgent"
    assert "SELF-CARE" not in decision.fired_ids
    assert decision.likely_source == "mixed"
    assert "stress fracture of the femoral neck" in decision.possible_causes


def test_the_patient_is_ignored(rules):
    with_patient = decide(report(), rules, TODAY)
    without = decide(report({"patient": DELETE}), rules, TODAY)
    odd_patient = decide(report({"patient": {"severity": 10, "joint_locking": True}}), rules, TODAY)
    assert with_patient == without == odd_patient


def test_the_report_is_not_changed(rules):
    body = report({"function.instability": None, "pain.locations": ["groin", "buttock"]})
    before = copy.deepcopy(body)
    decide(body, rules, TODAY)
    assert body == before


# -- likely source, causes, notes -----------------------------------------------------


@pytest.mark.parametrize(("locations", "source"), [
    (["groin"], "joint"),
    (["inner_hip"], "joint"),
    (["outer_hip"], "soft_tissue"),
    (["upper_thigh", "buttock"], "soft_tissue"),
    (["groin", "buttock"], "mixed"),
    (["inner_hip", "outer_hip", "upper_thigh"], "mixed"),
    ([], "mixed"),
    (DELETE, "mixed"),
    (["knee"], "mixed"),
    (["groin", "knee"], "mixed"),   # the unreadable item might be soft tissue
])
def test_likely_source(rules, locations, source):
    assert decide(report({"pain.locations": locations}), rules, TODAY).likely_source == source


OVERUSE_CAUSES = ["muscle or tendon strain", "bursitis", "tendonitis"]
FRACTURE = "stress fracture of the femoral neck"
IMAGING = "imaging may be needed (X-ray or MRI)"
FRACTURE_PROFILE = {"pain.locations": ["inner_hip"], "activity.high_impact": True, "pain.onset": "gradual"}


@pytest.mark.parametrize(("changes", "suspected"), [
    (FRACTURE_PROFILE, True),
    ({**FRACTURE_PROFILE, "pain.locations": ["groin", "outer_hip"]}, True),
    ({**FRACTURE_PROFILE, "activity.high_impact": False}, False),
    ({**FRACTURE_PROFILE, "pain.onset": "sudden"}, False),
    ({**FRACTURE_PROFILE, "pain.locations": ["outer_hip"]}, False),
    ({**FRACTURE_PROFILE, "activity.high_impact": None}, True),
    ({**FRACTURE_PROFILE, "activity": DELETE}, True),
])
def test_stress_fracture_and_its_imaging_note(rules, changes, suspected):
    decision = decide(report(changes), rules, TODAY)
    assert list(decision.possible_causes[:3]) == OVERUSE_CAUSES
    assert (FRACTURE in decision.possible_causes) is suspected
    assert (IMAGING in decision.notes) is suspected


@pytest.mark.parametrize("changes", [
    {"function.joint_locking": True}, {"function.joint_locking": None},
    {"function.instability": True}, {"function.instability": None},
])
def test_locking_or_instability_adds_the_imaging_note(rules, changes):
    assert decide(report(changes), rules, TODAY).notes == (IMAGING,)


def test_no_note_without_reason(rules):
    assert decide(report(), rules, TODAY).notes == ()


# -- advice and referral ---------------------------------------------------------------

SELF_CARE_STEPS = ["Reduce your activity", "Ice the sore area for 10-15 minutes",
                   "gentle stretching", "physical therapist"]
CONSULT_OFFER = ("diagnosis", "medication", "corticosteroid injections", "trigger point injections",
                 "nerve blocks")


@pytest.mark.parametrize("changes", [{}, {"pain.severity": 8}, {"function.instability": True}],
                         ids=["self_care", "urgent", "specialist"])
def test_every_level_gets_the_self_care_steps(rules, changes):
    advice = " ".join(decide(report(changes), rules, TODAY).advice)
    for step in SELF_CARE_STEPS:
        assert step in advice


def test_self_care_advice_has_safety_netting_and_no_consult(rules):
    decision = decide(report(), rules, TODAY)
    netting = [line for line in decision.advice if line.startswith("Come back")]
    assert len(netting) == 1
    for warning in ("severe", "locks or gives way", "not improved after 14 days"):
        assert warning in netting[0]
    assert not any("consult" in line for line in decision.advice)
    assert decision.referral is None


@pytest.mark.parametrize(("changes", "priority", "within_days"), [
    ({"pain.severity": 8}, "urgent", 2),
    ({"function.instability": True}, "routine", 14),
])
def test_referred_levels_say_what_happens_and_what_the_consult_may_offer(rules, changes, priority,
                                                                         within_days):
    decision = decide(report(changes), rules, TODAY)
    assert decision.referral.priority == priority
    assert decision.referral.within_days == within_days
    assert f"within {within_days} days" in decision.advice[0]
    offer = decision.advice[-1]
    assert "not promises" in offer
    for option in CONSULT_OFFER:
        assert option in offer
    assert not any(line.startswith("Come back") for line in decision.advice)


def test_to_dict_is_json_ready_and_has_the_contract_fields(rules):
    decision = decide(report({"function.instability": None}), rules, TODAY)
    as_dict = json.loads(json.dumps(decision.to_dict()))
    assert {"care_level", "rules_version", "fired", "likely_source", "possible_causes", "notes",
            "advice"} <= set(as_dict)
    # issue 18: each reason and advice line also by its id in the rule file
    assert as_dict["fired"] == [{"id": "SPC-INSTABILITY", "reason": decision.fired[0].reason,
                                 "reason_id": "SPC-INSTABILITY"}]
    assert len(as_dict["advice_ids"]) == len(as_dict["advice"])
    assert as_dict["safety_netting"] == ["waiting-safety-net"]
    assert as_dict["referral"] == {"priority": "routine", "within_days": 14}


def test_decision_is_immutable(rules):
    decision = decide(report(), rules, TODAY)
    assert isinstance(decision, Decision)
    with pytest.raises(AttributeError):
        decision.care_level = "urgent"


# -- the worked examples of care-rules.md ------------------------------------------------


def test_example_1_runner_outer_hip_mild_and_recent_is_self_care(rules):
    decision = decide(report({"activity": {"sport": "running", "high_impact": True},
                              "pain.locations": ["outer_hip"], "pain.severity": 4, "pain.onset": "gradual",
                              "pain.started_on": days_ago(5)}), rules, TODAY)
    assert decision.care_level == "self_care"
    assert decision.fired_ids == ("SELF-CARE",)
    assert decision.likely_source == "soft_tissue"
    assert {"bursitis", "tendonitis", "muscle or tendon strain"} <= set(decision.possible_causes)
    assert FRACTURE not in decision.possible_causes


def test_example_2_tackled_footballer_is_urgent(rules):
    decision = decide(report({"activity": {"sport": "football", "high_impact": True},
                              "pain.locations": ["groin"], "pain.severity": 8, "pain.onset": "sudden",
                              "pain.direct_trauma": True, "pain.started_on": days_ago(0)}), rules, TODAY)
    assert decision.care_level == "urgent"
    assert decision.fired_ids == ("URG-SEVERE", "URG-SUDDEN", "URG-TRAUMA")
    assert decision.likely_source == "joint"


def test_example_3_runner_not_improving_after_three_weeks_is_specialist(rules):
    decision = decide(report({"activity": {"sport": "running", "high_impact": True},
                              "pain.locations": ["inner_hip"], "pain.severity": 5, "pain.onset": "gradual",
                              "pain.started_on": days_ago(30), **tried(21, "no")}), rules, TODAY)
    assert decision.care_level == "specialist"
    # 2026-12-1: a gradual inner-hip pain of a runner for 30 days also fires SPC-STRESS-FRACTURE
    # (care-rules.md rule table, "SPC-STRESS-FRACTURE | a suspected femoral-neck stress fracture
    # ... and pain for >= 14 days"); example 3 names the rule it is about.
    assert decision.fired_ids == ("SPC-NOT-IMPROVING", "SPC-STRESS-FRACTURE")
    assert FRACTURE in decision.possible_causes
    assert IMAGING in decision.notes


def test_example_4_hurdler_whose_hip_locks_is_specialist(rules):
    decision = decide(report({"activity": {"sport": "hurdles", "high_impact": True},
                              "pain.locations": ["buttock"], "pain.severity": 3,
                              "function.joint_locking": True}), rules, TODAY)
    assert decision.care_level == "specialist"
    assert decision.fired_ids == ("SPC-LOCKING",)
    assert IMAGING in decision.notes


def test_example_5_cyclist_not_sure_whether_the_hip_gives_way_is_specialist(rules):
    decision = decide(report({"activity": {"sport": "cycling", "high_impact": False},
                              "pain.locations": ["outer_hip"], "pain.severity": 2, "pain.onset": "gradual",
                              "function.instability": None}), rules, TODAY)
    assert decision.care_level == "specialist"
    assert decision.fired_ids == ("SPC-INSTABILITY",)
    reason = decision.fired[0].reason
    assert "not sure" in reason and "treated as yes" in reason
    assert IMAGING in decision.notes


# -- 2026-12-1: suspected femoral-neck stress fracture --------------------------------------

STOP_RUNNING = "Stop running and other high-impact activity until you have been assessed"
OVERRIDDEN = "you answered not high-impact, but {} is counted as high-impact"


def sport_report(sport: str, high_impact: bool = False, days: int = 20) -> dict:
    return report({"activity": {"sport": sport, "high_impact": high_impact},
                   "pain.locations": ["inner_hip"], **pain_for(days)})


@pytest.mark.parametrize(("sport", "counted"), [
    ("running", True), ("Trail running", True), ("RUNNING (trail)", True), ("marathon runner", True),
    ("Jogging", True), ("cross-country", True), ("Cross Country skiing", True), ("cross country", True),
    ("Fußball and football", True), ("Hóckey", True), ("Soccer/rugby", True), ("ballet dance", True),
    ("high jump", True), ("Tennis", True),
    # Judgement (care-rules.yaml, high_impact_sports): a job that names a listed word counts too
    ("Running shoes shop assistant", True),
    ("cycling", False), ("swimming", False), ("Dancehall DJ", False), ("trackless cycling", False),
    ("rowing", False), ("бег", False),
])
def test_the_high_impact_sports_list_is_matched_on_words_ignoring_case_and_accents(rules, sport, counted):
    decision = decide(sport_report(sport), rules, TODAY)
    assert decision.care_level == ("specialist" if counted else "self_care")
    assert ("SPC-STRESS-FRACTURE" in decision.fired_ids) is counted
    assert (FRACTURE in decision.possible_causes) is counted


def test_the_reason_says_when_the_sport_overrode_a_not_high_impact_answer(rules):
    overridden = decide(sport_report("Trail running", high_impact=False), rules, TODAY)
    assert OVERRIDDEN.format("running") in overridden.fired[0].reason
    assert overridden.fired[0].reason.endswith(".")
    answered = decide(sport_report("Trail running", high_impact=True), rules, TODAY)
    assert "you answered" not in answered.fired[0].reason
    cross = decide(sport_report("Cross Country", high_impact=False), rules, TODAY)
    assert OVERRIDDEN.format("cross country") in cross.fired[0].reason


def test_the_self_care_reason_says_so_too_when_the_sport_made_the_fracture_suspected(rules):
    decision = decide(sport_report("Trail running", high_impact=False, days=10), rules, TODAY)
    assert decision.care_level == "self_care"
    assert OVERRIDDEN.format("running") in decision.fired[0].reason
    plain = decide(report({"activity.sport": "running"}), rules, TODAY)   # outer hip: no suspicion
    assert "you answered" not in plain.fired[0].reason


@pytest.mark.parametrize(("changes", "said"), [
    ({"activity": DELETE}, "not known whether your sport is high-impact"),
    ({"activity.high_impact": DELETE}, "not known whether your sport is high-impact"),
    ({"activity.sport": DELETE}, "sport missing or unreadable"),
    ({"activity.sport": "!!!"}, "sport missing or unreadable"),
])
def test_an_unknown_sport_or_answer_counts_as_high_impact(rules, changes, said):
    decision = decide(report({**STRESS, **pain_for(20), "activity.high_impact": False, **changes}), rules, TODAY)
    assert decision.fired_ids == ("SPC-STRESS-FRACTURE",)
    assert said in decision.fired[0].reason and "to be safe" in decision.fired[0].reason


def test_the_stress_fracture_threshold_is_a_setting(rules):
    assert rules.settings["stress_fracture_days_min"] == 14
    reason = decide(report({**STRESS, **pain_for(14)}), rules, TODAY).fired[0].reason
    assert "14 days or more" in reason and "stress fracture of the femoral neck" in reason


@pytest.mark.parametrize("changes", [
    {**STRESS, **pain_for(3)}, {**STRESS, **pain_for(20)}, {**STRESS, "pain.severity": 8},
], ids=["self_care", "specialist", "urgent"])
def test_stop_running_comes_first_at_every_level_and_no_strengthening_under_load(rules, changes):
    decision = decide(report(changes), rules, TODAY)
    assert decision.advice[0].startswith(STOP_RUNNING)
    assert not any("Reduce your activity" in line for line in decision.advice)
    assert not any("exercises that strengthen" in line for line in decision.advice)
    assert any("leave strengthening exercises until you have been assessed" in line for line in decision.advice)
    assert IMAGING in decision.notes


def test_no_stop_running_advice_without_a_suspected_fracture(rules):
    assert not any(STOP_RUNNING in line for line in decide(report(), rules, TODAY).advice)


@pytest.mark.parametrize("trauma", [True, None])
def test_direct_trauma_adds_the_imaging_note(rules, trauma):
    decision = decide(report({"pain.direct_trauma": trauma}), rules, TODAY)
    assert decision.care_level == "urgent"
    assert decision.notes == (IMAGING,)


# care-rules.md 2026-12-1, "Safety-netting, every level": what to watch for, what to do, how soon
@pytest.mark.parametrize(("changes", "level", "said"), [
    ({}, "self_care", ["severe or suddenly worse", "fall, collision or blow", "locks or gives way",
                       "cannot put weight on the leg", "not improved after 14 days",
                       "do not wait the 14 days if it gets worse"]),
    ({"function.instability": True}, "specialist",
     ["While you wait for the consult", "prompt medical assessment", "pain becomes severe",
      "cannot put weight on the leg", "fall, collision or blow"]),
    ({"pain.severity": 8}, "urgent", ["prompt medical assessment", "within 2 days", "cannot put weight on the leg",
                                      "pain is severe", "seek care today"]),
])
def test_safety_netting_for_every_level(rules, changes, level, said):
    decision = decide(report(changes), rules, TODAY)
    assert decision.care_level == level
    text = " ".join(decision.advice)
    for words in said:
        assert words in text


@pytest.mark.parametrize("changes", [
    {**STRESS, **pain_for(10)}, {**STRESS, **pain_for(0)},
    {"activity": {"sport": "Trail running", "high_impact": False}, "pain.locations": ["groin"]},
])
def test_self_care_never_says_no_warning_signs_beside_an_imaging_note(rules, changes):
    decision = decide(report(changes), rules, TODAY)
    assert decision.care_level == "self_care"
    assert IMAGING in decision.notes
    reason = decision.fired[0].reason
    assert "no warning signs" not in reason.lower()
    assert "stress fracture of the femoral neck is possible" in reason
    assert "less than 14 days" in reason


def test_self_care_without_findings_keeps_its_plain_reason(rules):
    decision = decide(report(), rules, TODAY)
    assert decision.notes == ()
    assert decision.fired[0].reason.startswith("No warning signs were reported")


def test_example_6_marathon_runner_groin_41_days_is_specialist_and_10_days_self_care(rules):
    marathon = {"activity": {"sport": "marathon", "high_impact": True}, "pain.locations": ["groin"],
                "pain.severity": 6, "pain.onset": "gradual", **tried(13, "no")}
    decision = decide(report({**marathon, **pain_for(41)}), rules, TODAY)
    assert decision.care_level == "specialist"
    assert decision.fired_ids == ("SPC-STRESS-FRACTURE",)
    assert IMAGING in decision.notes
    assert decision.advice[0].startswith(STOP_RUNNING)
    assert decision.referral.to_dict() == {"priority": "routine", "within_days": 14}

    early = decide(report({**marathon, **pain_for(10), **tried(10, "no")}), rules, TODAY)
    assert early.care_level == "self_care"
    assert early.fired_ids == ("SELF-CARE",)
    assert early.advice[0].startswith(STOP_RUNNING)
    assert IMAGING in early.notes
    assert all("no warning signs" not in text.lower() for text in (early.fired[0].reason, *early.advice))


def test_example_7_trail_running_answered_not_high_impact_is_specialist(rules):
    decision = decide(report({"activity": {"sport": "Trail running", "high_impact": False},
                              "pain.locations": ["inner_hip"], "pain.onset": "gradual", **pain_for(20)}),
                      rules, TODAY)
    assert decision.care_level == "specialist"
    assert decision.fired_ids == ("SPC-STRESS-FRACTURE",)
    assert "running is counted as high-impact" in decision.fired[0].reason
    assert OVERRIDDEN.format("running") in decision.fired[0].reason


# -- 2026-12-2 (issue 18): Spanish sports, and the ids of what the patient reads ------------


@pytest.mark.parametrize("sport", [
    "correr", "Corredora de montaña", "salir a correr", "carreras de fondo", "trotar", "footing", "Atletismo",
    "maratón", "MARATON", "triatlón", "campo a través", "Fútbol", "futbolista", "baloncesto", "básquet",
    "voleibol", "tenis", "balonmano", "baile", "Danza clásica", "gimnasia rítmica", "salto de longitud",
])
def test_a_spanish_high_impact_sport_counts_exactly_as_running_does(rules, sport):
    """A Spanish-speaking patient who types "correr" must get what "running" gets: the
    stress-fracture rule, and the reason naming the word found (folded: "futbol")."""
    english = decide(sport_report("running", high_impact=False), rules, TODAY)
    spanish = decide(sport_report(sport, high_impact=False), rules, TODAY)
    assert spanish.care_level == english.care_level == "specialist"
    assert spanish.fired_ids == english.fired_ids == ("SPC-STRESS-FRACTURE",)
    assert spanish.advice == english.advice and spanish.possible_causes == english.possible_causes
    assert spanish.fired[0].sport_word and OVERRIDDEN.format(spanish.fired[0].sport_word) in spanish.fired[0].reason


@pytest.mark.parametrize("sport", ["ciclismo", "natación", "remo", "yoga", "pilates", "caminar", "senderismo"])
def test_spanish_low_impact_sports_are_not_on_the_list(rules, sport):
    assert decide(sport_report(sport, high_impact=False), rules, TODAY).care_level == "self_care"


def test_advice_ids_are_parallel_to_the_advice_and_name_the_safety_netting(rules):
    by_text = {line.text: line.id for line in rules.advice_lines}
    for changes, safety_net in (({}, "come-back-self-care"), ({"pain.severity": 8}, "urgent-safety-net"),
                                ({"function.joint_locking": True}, "waiting-safety-net")):
        decision = decide(report(changes), rules, TODAY)
        assert len(decision.advice_ids) == len(decision.advice)
        assert decision.safety_netting == (safety_net,)
        for text, advice_id in zip(decision.advice, decision.advice_ids):
            assert by_text.get(text, rules.consult_id) == advice_id
    urgent = decide(report({"pain.severity": 8}), rules, TODAY)
    assert urgent.advice_ids == ("urgent-consult", "reduce-activity", "ice", "stretch-and-strengthen",
                                 "physical-therapist", "urgent-safety-net", "consult-may-offer")
    assert urgent.advice[-1] == rules.consult_line


def test_reason_ids_name_the_rule_or_its_reasons_when_entry_and_keep_what_was_added(rules):
    plain = decide(report(), rules, TODAY).fired[0]
    assert (plain.id, plain.reason_id, plain.unknown_answers, plain.sport_word) == ("SELF-CARE", "SELF-CARE", (), None)
    too_early = decide(sport_report("Trail running", high_impact=False, days=10), rules, TODAY).fired[0]
    assert (too_early.id, too_early.reason_id, too_early.sport_word) == ("SELF-CARE", "stress-fracture-too-early",
                                                                         "running")
    imaging = decide(report({"pain.direct_trauma": True}), rules, TODAY)
    assert imaging.fired[0].reason_id == "URG-TRAUMA"
    unknown = decide(report({"pain.severity": DELETE, "pain.onset": DELETE}), rules, TODAY)
    assert [(f.id, f.reason_id, f.unknown_answers) for f in unknown.fired] == [
        ("URG-SEVERE", "URG-SEVERE", ("pain.severity",)), ("URG-SUDDEN", "URG-SUDDEN", ("pain.onset",))]
    assert unknown.to_dict()["fired"][0] == {"id": "URG-SEVERE", "reason": unknown.fired[0].reason,
                                             "reason_id": "URG-SEVERE"}
