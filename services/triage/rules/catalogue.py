"""Regenerate the catalogues of the rule file's patient-facing texts (issue 18).

    python -m services.triage.rules.catalogue            # after changing care-rules.yaml
    python -m services.triage.rules.catalogue --check    # exit 1 if a file is out of date
    python -m services.triage.rules.catalogue --init fr  # start a catalogue for a new language

From the rule file in force it builds the template `locale/care_rules.pot`: one entry per
text a patient may read, msgctxt its stable id (services/triage/domain/text_ids.py), msgid
the English text exactly as written, {setting} placeholders not filled in. The catalogues
under locale/ are updated and compiled from it by services/common/catalogue_tool.py; the
kiosk shows an untranslated or fuzzy text in English until a translator fills it in and a
clinician reviews it: tests/unit/test_triage_catalogue.py fails until then.
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from babel.messages.catalog import Catalog

from services.common import catalogue_tool
from services.triage.domain import RuleSet, default_rules_path, load_rules

PROJECT = "clinic-referral triage care rules"
# Every translation is a clinical text: it says so at the top of its catalogue.
DOMAIN = catalogue_tool.Domain(
    name="care_rules",
    header=("# {language} translation of the patient-facing texts of services/triage/rules/care-rules.yaml.\n"
            "# AWAITING CLINICIAN REVIEW: like every `clinician_review: required` text of the rule\n"
            "# file, these translations must be reviewed by a clinician fluent in {language}\n"
            "# before clinical use."))


def locale_dir() -> Path:
    return Path(str(resources.files("services.triage.rules").joinpath("locale")))


def template(rules: RuleSet) -> Catalog:
    """The .pot: every patient-facing text of the rule file, by its context; the rule file's
    version is each catalogue's."""
    catalog = Catalog(domain=DOMAIN.name, project=PROJECT, version=rules.version, fuzzy=False)
    for context, english in rules.texts.items():
        catalog.add(english, context=context, flags=("python-brace-format",) if "{" in english else ())
    return catalog


def update(rules: RuleSet, directory: Path, *, check: bool = False, init: str | None = None) -> list[Path]:
    """Write (or, with `check`, only find) the files that are out of date; their paths."""
    return catalogue_tool.update(template(rules), directory, DOMAIN, check=check, init=init)


def main(argv: list[str] | None = None) -> int:
    return catalogue_tool.command_line(
        argv, prog="python -m services.triage.rules.catalogue", description=__doc__.split("\n\n")[0],
        run=lambda **options: update(load_rules(default_rules_path()), locale_dir(), **options))


if __name__ == "__main__":
    sys.exit(main())
