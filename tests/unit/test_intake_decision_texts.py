"""decision_texts.shown: what the kiosk shows of a decision, in the report's language (issue 18)."""
from __future__ import annotations

from services.intake import decision_texts

ENGLISH = {
    "care_level": "self_care",
    "advice": ["Ice the sore area.", "Come back if it gets worse."],
    "fired": [{"id": "SELF-CARE", "reason": "No warning signs were reported."}],
}
SPANISH = {
    **ENGLISH,
    "advice_ids": ["ice", "come-back-self-care"],
    "safety_netting": ["come-back-self-care"],
    "fired": [{"id": "SELF-CARE", "reason": "No warning signs were reported.", "reason_id": "SELF-CARE"}],
    "language": "es",
    "patient_text": {"advice": ["Póngase hielo en la zona dolorida.", "Vuelva si empeora."],
                     "reasons": ["No se informó de ninguna señal de alarma."]},
}


def test_the_patient_texts_are_shown_with_their_ids_and_the_safety_netting_marked():
    advice, detail = decision_texts.shown(SPANISH)
    assert advice == ["Póngase hielo en la zona dolorida.", "Vuelva si empeora."]
    assert detail == {
        "language": "es",
        "advice": [{"id": "ice", "text": "Póngase hielo en la zona dolorida.", "safety_netting": False},
                   {"id": "come-back-self-care", "text": "Vuelva si empeora.", "safety_netting": True}],
        "reasons": [{"rule": "SELF-CARE", "reason_id": "SELF-CARE",
                     "text": "No se informó de ninguna señal de alarma."}],
    }


def test_a_decision_made_before_patient_texts_is_shown_in_english_without_ids():
    advice, detail = decision_texts.shown(ENGLISH)
    assert advice == ENGLISH["advice"]
    assert detail == {
        "language": "en",
        "advice": [{"id": None, "text": "Ice the sore area.", "safety_netting": False},
                   {"id": None, "text": "Come back if it gets worse.", "safety_netting": False}],
        "reasons": [{"rule": "SELF-CARE", "reason_id": None, "text": "No warning signs were reported."}],
    }


def test_patient_texts_in_a_language_the_kiosk_does_not_speak_are_shown_in_english(caplog):
    # never dead-lettered (the patient waits for it), never shown under a language we cannot name
    advice, detail = decision_texts.shown({**SPANISH, "language": "fr"})
    assert advice == ENGLISH["advice"] and detail["language"] == "en"
    assert detail["reasons"][0]["text"] == "No warning signs were reported."
    assert "unsupported language (str)" in caplog.text and "'fr'" not in caplog.text and " fr" not in caplog.text


def test_a_language_without_patient_texts_is_not_claimed():
    # a decision that names Spanish but carries no Spanish texts is shown, and labelled, English
    _advice, detail = decision_texts.shown({**ENGLISH, "language": "es"})
    assert detail["language"] == "en"
