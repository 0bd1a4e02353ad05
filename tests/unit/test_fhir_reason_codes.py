"""ServiceRequest.reasonCode from the triage decisions behind a referral (issue 17): the care
levels, then a coding per rule that fired (services/referral/fhir/referral_resources.reason_codes),
and the rules as the decision batch takes them from a decision event (decision_batch.fired_rules).
Pure; every ServiceRequest built is checked against the fhir.resources R4B model."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir.resources.R4B import get_fhir_model_class

from services.referral import decision_batch
from services.referral.fhir import referral_resources
from services.referral.fhir.ids import CARE_LEVEL_SYSTEM, TRIAGE_RULE_SYSTEM
from services.referral.fhir.records import FiredRule, ReferralRecord, ReportLink

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RID = "11111111-1111-4111-8111-111111111111"
R1, R2 = "55555555-5555-4555-8555-555555555555", "66666666-6666-4666-8666-666666666666"
SEVERE = FiredRule("URG-SEVERE", "Severe pain (8 or more) needs prompt assessment.")
CHRONIC = FiredRule("SPEC-CHRONIC", "Pain for over three months.")
NIGHT = FiredRule("URG-NIGHT", "Pain that wakes the patient at night.")


def link(report_id: str, care_level: str, position: int, fired) -> ReportLink:
    return ReportLink(report_id, care_level, T0 + timedelta(hours=position), position, fired=fired)


def rules(codes: list[dict]) -> list[tuple[str, str, str]]:
    """(code, display, text) of the codes that name a triage rule."""
    return [(c["coding"][0]["code"], c["coding"][0]["display"], c["text"]) for c in codes
            if c["coding"][0]["system"] == TRIAGE_RULE_SYSTEM]


def levels(codes: list[dict]) -> list[str]:
    return [c["coding"][0]["code"] for c in codes if c["coding"][0]["system"] == CARE_LEVEL_SYSTEM]


def service_request(reports: list[ReportLink]) -> dict:
    referral = ReferralRecord(RID, "MRN-0042", "Ana Silva", "urgent", "booked", T0, T0 + timedelta(days=2),
                              T0 + timedelta(hours=2), 2, None, None)
    resource = referral_resources.service_request(referral, reports, [])
    get_fhir_model_class("ServiceRequest").model_validate(resource)
    return resource


def test_each_fired_rule_is_a_coding_with_its_reason_after_the_care_level():
    codes = service_request([link(R1, "specialist", 0, (CHRONIC, SEVERE))])["reasonCode"]
    assert levels(codes) == ["specialist"]
    assert codes[0]["coding"][0]["system"] == CARE_LEVEL_SYSTEM  # care level first
    assert rules(codes) == [("SPEC-CHRONIC", CHRONIC.reason, CHRONIC.reason),
                            ("URG-SEVERE", SEVERE.reason, SEVERE.reason)]


def test_rules_of_every_report_in_link_order_each_once():
    codes = service_request([link(R1, "specialist", 0, (CHRONIC,)),
                             link(R2, "urgent", 1, (SEVERE, CHRONIC, NIGHT))])["reasonCode"]
    assert levels(codes) == ["specialist", "urgent"]
    assert [code for code, _display, _text in rules(codes)] == ["SPEC-CHRONIC", "URG-SEVERE", "URG-NIGHT"]


def test_a_report_whose_rules_are_not_known_gives_its_care_level_only():
    codes = service_request([link(R1, "urgent", 0, None), link(R2, "urgent", 1, (NIGHT,))])["reasonCode"]
    assert levels(codes) == ["urgent"]
    assert rules(codes) == [("URG-NIGHT", NIGHT.reason, NIGHT.reason)]
    assert rules(service_request([link(R1, "specialist", 0, None)])["reasonCode"]) == []
    assert rules(service_request([link(R1, "specialist", 0, ())])["reasonCode"]) == []


def test_the_decision_batch_takes_id_and_reason_of_each_fired_rule_in_order():
    data = {"fired": [{"id": "URG-SEVERE", "reason": "Severe.", "weight": 3}, {"id": "A-1", "reason": "A."}]}
    assert decision_batch.fired_rules(data) == ({"id": "URG-SEVERE", "reason": "Severe."},
                                                {"id": "A-1", "reason": "A."})
    assert decision_batch.fired_rules({"fired": []}) == ()
    assert decision_batch.fired_rules({}) is None  # the decision does not say: not known
