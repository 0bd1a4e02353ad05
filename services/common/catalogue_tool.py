"""Regenerating a domain's gettext catalogues from its template (issue 18), for every tool:

    python -m services.triage.rules.catalogue     # the care rules' patient texts
    python -m services.intake.messages.catalogue  # the patient messages' words
    python -m services.intake.kiosk_catalogue     # the kiosk's texts

Each tool builds its template (a Babel Catalog) its own way and hands it to `update`, which
writes `<domain>.pot`, updates every `<lang>/LC_MESSAGES/<domain>.po` with Babel's catalogue
API (new texts added untranslated; a changed English text keeps its old translation only as
a fuzzy suggestion; a removed one becomes obsolete) and compiles `<domain>.mo` from it.
Untranslated and fuzzy entries are left out of the .mo, so they are shown in English until a
translator fills them in; each catalogue's test fails until then.

A file is rewritten only when more than its dates changed, so a second run changes nothing.
"""
from __future__ import annotations

import argparse
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from .catalogue_files import catalogue_path, languages

_DATES = re.compile(rb'^"(POT-Creation-Date|PO-Revision-Date): .*\\n"$', re.MULTILINE)


@dataclass(frozen=True)
class Domain:
    """How one domain's files are written."""
    name: str                          # the gettext domain: the files' name
    header: str                        # a new .po's header comment; {language} is the language's English name
    width: int = 100                   # where .po lines wrap
    template_width: int | None = None  # where .pot lines wrap, when not at `width`
    template_header: bool = True       # False: a .pot of its entries only

    def po_bytes(self, catalog: Catalog) -> bytes:
        return _po_bytes(catalog, width=self.width)

    def template_bytes(self, catalog: Catalog) -> bytes:
        return _po_bytes(catalog, width=self.template_width or self.width, omit_header=not self.template_header)


def _po_bytes(catalog: Catalog, *, width: int, omit_header: bool = False) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=width, sort_output=False, omit_header=omit_header)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    """The compiled catalogue; untranslated and fuzzy entries left out (Babel's default)."""
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def read_catalog(path: Path, domain: str) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, domain=domain)


def update(template: Catalog, directory: Path, domain: Domain, *,
           check: bool = False, init: str | None = None) -> list[Path]:
    """Write (or, with `check`, only find) the files that are out of date; their paths.

    Each .po takes the template's project and version (its Project-Id-Version); `init` starts
    a catalogue for a language that has none."""
    changed = []
    pot = directory / f"{domain.name}.pot"
    if _write(pot, domain.template_bytes(template), check):
        changed.append(pot)
    if init and not catalogue_path(directory, domain.name, init).exists():
        new = catalogue_path(directory, domain.name, init)
        catalog = Catalog(locale=init, domain=domain.name, project=template.project, version=template.version,
                          fuzzy=False, header_comment=domain.header.format(language=Locale.parse(init).english_name))
        new.parent.mkdir(parents=True, exist_ok=True)
        new.write_bytes(domain.po_bytes(catalog))
    for language in languages(directory):
        po = catalogue_path(directory, domain.name, language)
        catalog = read_catalog(po, domain.name)
        catalog.update(template, update_header_comment=False)
        catalog.project, catalog.version = template.project, template.version
        po_changed = _write(po, domain.po_bytes(catalog), check)
        if po_changed:
            changed.append(po)
        # compiled from the .po as it is (or, when checking, as it would be)
        compiled = catalog if check and po_changed else read_catalog(po, domain.name)
        if _write(po.with_suffix(".mo"), mo_bytes(compiled), check):
            changed.append(po.with_suffix(".mo"))
    return changed


def _write(path: Path, content: bytes, check: bool) -> bool:
    """Whether `path` differs from `content` in more than its dates; written unless `check`."""
    if path.exists() and _DATES.sub(b"", path.read_bytes()) == _DATES.sub(b"", content):
        return False
    if not check:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return True


def command_line(argv: list[str] | None, *, prog: str, description: str,
                 run: Callable[..., list[Path]]) -> int:
    """A tool's `[--check] [--init LANG]`: `run(check=, init=)` is its update; 1 when checking
    finds a file out of date."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    parser.add_argument("--init", metavar="LANG", help="start a catalogue for LANG (e.g. fr) if it has none")
    args = parser.parse_args(argv)
    changed = run(check=args.check, init=args.init)
    for path in changed:
        print(f"{'out of date' if args.check else 'written'}: {path}")
    return 1 if args.check and changed else 0
