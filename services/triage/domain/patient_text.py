"""A decision's texts for the patient, in the patient's language. Pure.

The decision keeps its English texts (the clinical record) and what they were made of: the
ids of its advice lines, and for each reason its id, the unknown answers it names and the
sport word that overrode an answer. Each part is looked up by its context and its English
text as written (`translate(context, english)`, gettext's pgettext), then the settings are
filled in and the parts composed exactly as the engine composes the English. With the
identity lookup the result is the English of the decision, word for word.
"""

from __future__ import annotations

from collections.abc import Callable

from . import text_ids
from .decision import Decision, FiredRule
from .ruleset import RuleSet

# (context, English text as written) -> the text in the patient's language (or the English)
Translate = Callable[[str, str], str]
RULE_FILE_LANGUAGE = "en"   # the rule file's texts are English: they need no catalogue


def english(_context: str, text: str) -> str:
    return text


def recorded(decision: Decision, rules: RuleSet, language: str, translate: Translate) -> dict:
    """The decision as stored and announced: its English record (Decision.to_dict), the
    report's language, and the patient's texts in it: None for an English report, whose
    texts are the record's own (a copy would only make every English decision event bigger:
    issue 15's events stay small)."""
    texts = None if language == RULE_FILE_LANGUAGE else patient_text(decision, rules, translate)
    return {**decision.to_dict(), "language": language, "patient_text": texts}


def patient_text(decision: Decision, rules: RuleSet, translate: Translate) -> dict[str, list[str]]:
    """`{"advice": [...], "reasons": [...]}`, parallel to the decision's advice and fired."""
    say = _Sayer(rules, translate)
    return {"advice": [say.advice(advice_id) for advice_id in decision.advice_ids],
            "reasons": [say.reason(fired) for fired in decision.fired]}


class _Sayer:
    def __init__(self, rules: RuleSet, translate: Translate) -> None:
        self.rules = rules
        self.translate = translate

    def text(self, context: str) -> str:
        """The text in the patient's language with its {settings} filled in, as the loader
        fills the English; a translation that cannot be filled falls back to the English."""
        english_text = self.rules.texts[context]
        try:
            return self.translate(context, english_text).format_map(self.rules.settings)
        except (KeyError, IndexError, ValueError):
            return english_text.format_map(self.rules.settings)

    def advice(self, advice_id: str) -> str:
        if advice_id == self.rules.consult_id:
            options = [self.text(text_ids.consult_option(option)) for option in self.rules.consult_option_ids]
            return f"{self.text(text_ids.CONSULT_LEAD_IN)} {', '.join(options)}."
        return self.text(text_ids.advice(advice_id))

    def reason(self, fired: FiredRule) -> str:
        variant = None if fired.reason_id == fired.id else fired.reason_id
        said = [self.text(text_ids.unknown_answer(field)) for field in fired.unknown_answers]
        if fired.sport_word is not None:
            # {word} is the patient's own word, not translated; replaced as the engine does
            overridden = self.translate(text_ids.SPORT_OVERRODE_ANSWER, self.rules.texts[text_ids.SPORT_OVERRODE_ANSWER])
            if "{word}" not in overridden:
                overridden = self.rules.texts[text_ids.SPORT_OVERRODE_ANSWER]
            said.append(overridden.replace("{word}", fired.sport_word))
        return FiredRule.compose(self.text(text_ids.reason(fired.id, variant)), said)
