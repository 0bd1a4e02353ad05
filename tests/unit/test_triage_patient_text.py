"""Issue 18: a decision's texts in the patient's language - rendered from the ids a decision
keeps (pure), looked up in the shipped catalogues, and carried by the decision event."""
from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.inbox import Delivery
from services.intake import events as intake_events
from services.intake.schemas import REPORT_EXAMPLE
from services.triage import events, worker
from services.triage.domain import decide, default_rules_path, load_rules
from services.triage.domain.patient_text import english, patient_text, recorded
from services.triage.replay import differences, replay
from services.triage.translations import CataloguesMissing, load_catalogues

TODAY = date(2026, 11, 26)


@pytest.fixture(scope="module")
def rules():
    return load_rules(default_rules_path())


@pytest.fixture(scope="module")
def spanish(catalogues):
    return catalogues.lookup("es")


@pytest.fixture(scope="module")
def catalogues():
    return load_catalogues()


def report(*, sport="cycling", high_impact=False, locations=("outer_hip",), onset="gradual", days=5,
           **answers) -> dict:
    body = {"activity": {"sport": sport, "high_impact": high_impact},
            "pain": {"locations": list(locations), "side": "left", "severity": 3, "onset": onset,
                     "started_on": (TODAY - timedelta(days=days)).isoformat(), "direct_trauma": False},
            "function": {"joint_locking": False, "instability": False, "persistent_dysfunction": False},
            "home_care": {"measures": [], "days": 0, "improving": "not_tried"}}
    for dotted, value in answers.items():
        section, key = dotted.split("__")
        if value is None and key == "severity":
            del body[section][key]
        else:
            body[section][key] = value
    return body


CASES = {
    "self_care": report(),
    "urgent_unknowns": report(pain__severity=None, function__joint_locking=None),
    "sport_overrode": report(sport="Trail running", locations=("groin",), days=20),
    "spanish_sport_too_early": report(sport="fútbol", locations=("inner_hip",), days=10),
    "imaging_note": report(pain__direct_trauma=None),
    "specialist": report(function__instability=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_english_the_patient_text_is_the_decision_word_for_word(rules, case):
    decision = decide(CASES[case], rules, TODAY)
    assert patient_text(decision, rules, english) == {"advice": list(decision.advice),
                                                      "reasons": [fired.reason for fired in decision.fired]}


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_spanish_every_text_is_translated_and_parallel_to_the_decision(rules, spanish, case):
    decision = decide(CASES[case], rules, TODAY)
    text = patient_text(decision, rules, spanish)
    assert len(text["advice"]) == len(decision.advice) and len(text["reasons"]) == len(decision.fired)
    for translated, original in zip(text["advice"] + text["reasons"],
                                    list(decision.advice) + [f.reason for f in decision.fired]):
        assert translated != original and "{" not in translated and translated.endswith(".")


def test_a_spanish_reason_names_the_unknown_answers_as_the_english_does(rules, spanish):
    decision = decide(CASES["urgent_unknowns"], rules, TODAY)
    severe = patient_text(decision, rules, spanish)["reasons"][decision.fired_ids.index("URG-SEVERE")]
    # the setting filled in, and "reason (unknown)." kept as the English composes it
    assert severe == ("Un dolor de 7 o más sobre 10 es intenso, y un dolor intenso requiere una valoración médica "
                      "sin demora (falta la intensidad del dolor o no se pudo leer: se considera intenso, "
                      "por seguridad).")


def test_a_reason_with_two_unknown_answers_keeps_them_in_order_joined_as_in_english(rules, spanish):
    decision = decide(report(home_care__days="many", home_care__improving=None), rules, TODAY)
    index = decision.fired_ids.index("SPC-NOT-IMPROVING")
    assert decision.fired[index].unknown_answers == ("home_care.days", "home_care.improving")
    reason = patient_text(decision, rules, spanish)["reasons"][index]
    assert reason.startswith("El dolor no ha mejorado después de 14 días o más de cuidados en casa")
    assert reason.endswith(" (faltan los días de cuidados en casa o no se pudieron leer: se consideran suficientes, "
                           "por seguridad; no se sabe si los cuidados en casa le están ayudando: se considera que "
                           "no mejora, por seguridad).")


def test_the_sport_word_stays_the_patients_in_the_spanish_reason(rules, spanish):
    english_decision = decide(CASES["sport_overrode"], rules, TODAY)
    assert english_decision.fired[0].sport_word == "running"
    reason = patient_text(english_decision, rules, spanish)["reasons"][0]
    assert reason.endswith("(usted respondió que su deporte no es de alto impacto, pero running se considera "
                           "de alto impacto).")
    too_early = decide(CASES["spanish_sport_too_early"], rules, TODAY)
    assert too_early.fired[0].reason_id == "stress-fracture-too-early"
    reason = patient_text(too_early, rules, spanish)["reasons"][0]
    assert reason.startswith("Es posible una fractura por estrés del cuello del fémur")
    assert "hace menos de 14 días" in reason and reason.endswith("pero futbol se considera de alto impacto).")


def test_the_consult_line_and_the_safety_netting_in_spanish(rules, spanish):
    decision = decide(report(function__instability=True), rules, TODAY)
    text = dict(zip(decision.advice_ids, patient_text(decision, rules, spanish)["advice"]))
    assert text["specialist-consult"].endswith("con la primera cita libre en un plazo de 14 días.")
    assert text["consult-may-offer"] == (
        "Según la valoración, la consulta de tratamiento del dolor puede ofrecer (son opciones, no promesas): "
        "diagnóstico del origen del dolor, medicación, inyecciones de corticoides, inyecciones en puntos gatillo, "
        "bloqueos nerviosos.")
    assert decision.safety_netting == ("waiting-safety-net",)
    assert text["waiting-safety-net"].startswith("Mientras espera la consulta")


def test_a_changed_english_text_falls_back_to_english_never_to_the_old_translation(spanish):
    changed = default_rules_path().read_text(encoding="utf-8").replace(
        "Ice the sore area for 10-15 minutes", "Ice the sore area for 20 minutes")
    rules = load_rules(changed)
    decision = decide(report(), rules, TODAY)
    text = dict(zip(decision.advice_ids, patient_text(decision, rules, spanish)["advice"]))
    assert text["ice"] == "Ice the sore area for 20 minutes several times a day, especially right after an injury."
    assert text["reduce-activity"].startswith("Reduzca su actividad")


def test_a_translation_with_a_placeholder_the_settings_lack_falls_back_to_english(rules):
    decision = decide(report(pain__severity=9), rules, TODAY)
    broken = patient_text(decision, rules, lambda context, text: "Dolor {grave}." if context == "reason:URG-SEVERE"
                          else text)
    assert broken["reasons"][0] == decision.fired[0].reason


def test_a_supported_language_without_its_catalogue_stops_the_start(tmp_path):
    with pytest.raises(CataloguesMissing, match=r"es \(.*care_rules\.mo"):
        load_catalogues(directory=tmp_path)
    (tmp_path / "es" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "es" / "LC_MESSAGES" / "care_rules.mo").write_bytes(b"not a catalogue")
    with pytest.raises(CataloguesMissing, match="es"):
        load_catalogues(directory=tmp_path)
    assert load_catalogues(("en",), directory=tmp_path).lookup("en")("ctx", "text") == "text"


# -- the report event's language, and the decision event ----------------------------------


def report_event(**data) -> dict:
    patient = {"mrn": "MRN-0042", "given_name": "Ana", "family_name": "Silva", "birth_date": "1991-04-02"}
    clinical = {k: copy.deepcopy(REPORT_EXAMPLE[k]) for k in ("activity", "pain", "function", "home_care")}
    event = intake_events.report_event(str(uuid.uuid4()), patient, clinical, datetime(2026, 11, 26, 9, tzinfo=UTC)
                                       .isoformat())
    event["data"].pop("language", None)
    event["data"].update(data)
    return event


@pytest.mark.parametrize(("sent", "read"), [({}, "en"), ({"language": "en"}, "en"), ({"language": "es"}, "es")])
def test_the_report_language_is_read_absent_meaning_english(sent, read):
    assert events.parse_report_event(report_event(**sent))["language"] == read


@pytest.mark.parametrize("language", ["fr", "ES", "", None, 7, ["es"]])
def test_an_unsupported_language_is_english_and_logged_not_poison(language, caplog):
    with caplog.at_level(logging.WARNING, logger="services.triage.events"):
        assert events.parse_report_event(report_event(language=language))["language"] == "en"
    assert "unsupported language" in caplog.text and "its patient texts are in English" in caplog.text


def test_the_decision_event_carries_the_language_and_the_patient_texts(rules, catalogues):
    event = report_event(language="es")
    delivery = Delivery(topic="t", partition=0, offset=0, key=event["subject"], traceparent=None)
    made = worker.decide_report(rules, catalogues, event, delivery)
    english_record = decide(made.input_snapshot, rules, made.assessed_on).to_dict()
    # every English key as before, byte for byte; then the language and the patient's texts
    assert {k: made.decision[k] for k in english_record} == english_record
    assert made.decision["language"] == "es"
    assert made.decision["patient_text"] == patient_text(decide(made.input_snapshot, rules, made.assessed_on),
                                                         rules, catalogues.lookup("es"))
    data = events.decision_event(made.report_id, made.decision, "2026-11-26T09:00:00+00:00", made.patient)["data"]
    assert data["language"] == "es" and data["patient_text"] == made.decision["patient_text"]
    assert data["advice_ids"] == english_record["advice_ids"]
    assert all("reason_id" in fired for fired in data["fired"])
    json.dumps(data)
    # and intake reads it (the contract between the two)
    assert intake_events.parse_decision({**event, "type": "clinic.triage.decided", "source": "/clinic/triage",
                                         "data": data})["patient_text"] == made.decision["patient_text"]


def test_an_english_decision_event_carries_no_copy_of_its_texts_and_intake_reads_it(rules, catalogues):
    # issue 15: events stay small; an English report's patient texts are the record's own
    event = report_event(language="en")
    delivery = Delivery(topic="t", partition=0, offset=0, key=event["subject"], traceparent=None)
    made = worker.decide_report(rules, catalogues, event, delivery)
    assert made.decision["language"] == "en" and made.decision["patient_text"] is None
    data = events.decision_event(made.report_id, made.decision, "2026-11-26T09:00:00+00:00", made.patient)["data"]
    read = intake_events.parse_decision({**event, "type": "clinic.triage.decided", "source": "/clinic/triage",
                                         "data": data})
    assert read["patient_text"] is None and read["advice"] == made.decision["advice"]


def test_a_replay_records_the_same_as_the_worker(rules, catalogues):
    answers = report(pain__severity=None)
    for language in ("en", "es"):
        stored = {"report_id": "r", "rules_version": rules.version, "input_snapshot": answers, "assessed_on": TODAY,
                  "language": language,
                  **recorded(decide(answers, rules, TODAY), rules, language, catalogues.lookup(language))}
        assert differences(stored, replay(stored, rules, catalogues)) == {}
        assert differences(stored, replay(stored, rules)) == {}   # the installed catalogues, loaded once
    assert differences({**stored, "language": "en"}, replay({**stored, "language": "en"}, rules))["patient_text"]
