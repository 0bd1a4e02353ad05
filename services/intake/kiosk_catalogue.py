"""Regenerate the kiosk's catalogues (issue 18), the ones Flask-Babel loads (kiosk_language.py).

    python -m services.intake.kiosk_catalogue            # after changing a kiosk text
    python -m services.intake.kiosk_catalogue --check    # exit 1 if a file is out of date
    python -m services.intake.kiosk_catalogue --init fr  # start a catalogue for a new language

It extracts, with Babel, every text the files named in services/intake/babel.cfg ask gettext
for (kiosk.html, kiosk_page.py with its lazy `_l`, kiosk_text.py) into the template
`translations/messages.pot`: entries only, sorted, each with the files it is in. The
catalogues under translations/ are updated and compiled from it by
services/common/catalogue_tool.py. A Spanish-speaking patient reads an untranslated or fuzzy
text in English: tests/unit/test_kiosk_catalogue.py fails until a translator fills it in.
"""
from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, check_and_call_extract_file
from babel.messages.frontend import parse_mapping_cfg

from services.common import catalogue_tool

from .kiosk_language import TRANSLATIONS

REPO = Path(__file__).resolve().parents[2]
MAPPING = Path(__file__).with_name("babel.cfg")   # its paths are the repository's
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None}       # kiosk_page.py's lazy_gettext
PROJECT, VERSION = "clinic-referral kiosk", "issue 18"
DOMAIN = catalogue_tool.Domain(
    name="messages",                     # Flask-Babel's default domain
    header=("# The patient kiosk's texts in {language} (services/intake/templates/kiosk.html,\n"
            "# kiosk_page.py, kiosk_text.py). Regenerate with `make translations` after changing them.\n"
            "# Plain and polite, for patients. It awaits review by a clinician and a native-speaking\n"
            "# reviewer before clinical use, like triage's texts.\n#"),
    width=110, template_width=76, template_header=False)   # as pybabel wrote them before this tool


def used() -> dict[tuple[str | None, str], list[str]]:
    """(msgctxt, msgid) of every text the kiosk's sources ask gettext for, sorted by msgid,
    with the files (relative to the repository) that ask for it."""
    with MAPPING.open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping, str(MAPPING))
    files = sorted({path for pattern, _method in method_map for path in REPO.glob(pattern)})
    found: dict[tuple[str | None, str], list[str]] = {}
    for path in files:
        for filename, _line, message, _comments, context in check_and_call_extract_file(
                path, method_map, options_map, None, KEYWORDS, (), False, dirpath=REPO):
            found.setdefault((context, message), [])
            if filename not in found[(context, message)]:
                found[(context, message)].append(filename)
    return dict(sorted(found.items(), key=lambda entry: (entry[0][1], entry[0][0] or "")))


def template() -> Catalog:
    catalog = Catalog(domain=DOMAIN.name, project=PROJECT, version=VERSION, fuzzy=False)
    for (context, message), files in used().items():
        catalog.add(message, context=context, locations=[(filename, None) for filename in files])
    return catalog


def update(directory: Path = TRANSLATIONS, *, check: bool = False, init: str | None = None) -> list[Path]:
    """Write (or, with `check`, only find) the files that are out of date; their paths."""
    return catalogue_tool.update(template(), directory, DOMAIN, check=check, init=init)


def main(argv: list[str] | None = None) -> int:
    return catalogue_tool.command_line(
        argv, prog="python -m services.intake.kiosk_catalogue", description=__doc__.split("\n\n")[0],
        run=update)


if __name__ == "__main__":
    sys.exit(main())
