"""Regenerate the catalogues of the rule file's patient-facing texts (issue 18).

    python -m services.triage.rules.catalogue            # after changing care-rules.yaml
    python -m services.triage.rules.catalogue --check    # exit 1 if a file is out of date
    python -m services.triage.rules.catalogue --init fr  # start a catalogue for a new language

From the rule file in force it writes the template `locale/care_rules.pot`: one entry per
text a patient may read, msgctxt its stable id (services/triage/domain/text_ids.py), msgid
the English text exactly as written, {setting} placeholders not filled in. Then, for every
language under locale/, it updates `<lang>/LC_MESSAGES/care_rules.po` with Babel's catalogue
API (new texts added untranslated; a changed English text keeps its old translation only as
a fuzzy suggestion; a removed one becomes obsolete) and compiles `care_rules.mo` from it.
Untranslated and fuzzy entries are left out of the .mo, so the kiosk shows those texts in
English until a translator fills them in and a clinician reviews them:
tests/unit/test_triage_catalogue.py fails until then.

A file is rewritten only when more than its dates changed.
"""
from __future__ import annotations

import argparse
import io
import re
import sys
from importlib import resources
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from services.triage.domain import RuleSet, default_rules_path, load_rules

DOMAIN = "care_rules"
PROJECT = "clinic-referral triage care rules"
# Every translation is a clinical text: it says so at the top of its catalogue.
REVIEW_NOTE = ("# {language} translation of the patient-facing texts of services/triage/rules/care-rules.yaml.\n"
               "# AWAITING CLINICIAN REVIEW: like every `clinician_review: required` text of the rule\n"
               "# file, these translations must be reviewed by a clinician fluent in {language}\n"
               "# before clinical use.")
_DATES = re.compile(rb'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.MULTILINE)
_WIDTH = 100


def locale_dir() -> Path:
    return Path(str(resources.files("services.triage.rules").joinpath("locale")))


def po_path(directory: Path, language: str) -> Path:
    return directory / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages(directory: Path) -> list[str]:
    """The languages that have a catalogue (a directory under locale/)."""
    return sorted(path.name for path in directory.iterdir() if path.is_dir()) if directory.is_dir() else []


def template(rules: RuleSet) -> Catalog:
    """The .pot: every patient-facing text of the rule file, by its context."""
    catalog = Catalog(domain=DOMAIN, project=PROJECT, version=rules.version, fuzzy=False)
    for context, english in rules.texts.items():
        catalog.add(english, context=context, flags=("python-brace-format",) if "{" in english else ())
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=_WIDTH, sort_output=False)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    """The compiled catalogue; untranslated and fuzzy entries left out (Babel's default)."""
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, domain=DOMAIN)


def update(rules: RuleSet, directory: Path, *, check: bool = False, init: str | None = None) -> list[Path]:
    """Write (or, with `check`, only find) the files that are out of date; their paths."""
    pot = template(rules)
    changed = []
    if _write(directory / f"{DOMAIN}.pot", po_bytes(pot), check):
        changed.append(directory / f"{DOMAIN}.pot")
    if init and not po_path(directory, init).exists():
        catalog = Catalog(locale=init, domain=DOMAIN, project=PROJECT, version=rules.version, fuzzy=False,
                          header_comment=REVIEW_NOTE.format(language=Locale.parse(init).english_name))
        po_path(directory, init).parent.mkdir(parents=True, exist_ok=True)
        po_path(directory, init).write_bytes(po_bytes(catalog))
    for language in languages(directory):
        po = po_path(directory, language)
        catalog = read_catalog(po)
        catalog.update(pot, update_header_comment=False)
        catalog.version = rules.version
        po_changed = _write(po, po_bytes(catalog), check)
        if po_changed:
            changed.append(po)
        # compiled from the .po as it is (or, when checking, as it would be)
        compiled = catalog if check and po_changed else read_catalog(po)
        if _write(po.with_suffix(".mo"), mo_bytes(compiled), check):
            changed.append(po.with_suffix(".mo"))
    return changed


def _write(path: Path, content: bytes, check: bool) -> bool:
    """Whether `path` differs from `content` in more than its dates; written unless `check`."""
    if path.exists() and _DATES.sub(b"", path.read_bytes()) == _DATES.sub(b"", content):
        return False
    if not check:
        path.write_bytes(content)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage.rules.catalogue",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--init", metavar="LANG", help="start a catalogue for LANG (e.g. fr) if it has none")
    args = parser.parse_args(argv)
    changed = update(load_rules(default_rules_path()), locale_dir(), check=args.check, init=args.init)
    for path in changed:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
