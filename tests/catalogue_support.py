"""Checks shared by the tests of gettext catalogues (triage's care rules, intake's patient
messages): is every text the code uses translated, and is the committed .mo what its .po says."""
from __future__ import annotations

import string
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po


def languages(locale: Path) -> list[str]:
    """The languages with a catalogue directory under `locale`."""
    return sorted(path.name for path in locale.iterdir() if path.is_dir())


def read(path: Path) -> Catalog:
    with path.open("rb") as source:
        return read_po(source)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def untranslated(po: Catalog, used: Iterable[tuple[str | None, str]]) -> list[str]:
    """What is wrong with `po` for each (msgctxt, English msgid) the code uses: no entry (or,
    with a context, one for another English text), not translated, fuzzy, or other {placeholders}."""
    problems = []
    for context, english in used:
        name = context if context is not None else repr(english)
        entry = po.get(english, context=context)   # by context *and* the English text in force
        if entry is None:
            by_context = [m for m in po if context is not None and m.context == context]
            problems.append(f"{name}: no entry" if not by_context else
                            f"{name}: translates another English text ({by_context[0].id!r})")
        elif not entry.string or not entry.string.strip():
            problems.append(f"{name}: not translated")
        elif entry.fuzzy:
            problems.append(f"{name}: fuzzy (the English changed: check and confirm the translation)")
        elif placeholders(entry.string) != placeholders(english):
            problems.append(f"{name}: placeholders {sorted(placeholders(entry.string))}, "
                            f"the English has {sorted(placeholders(english))}")
    return problems


def compiled(po: Path) -> bytes:
    """The .mo that `po` compiles to (Babel's write_mo, as the catalogue tools write it)."""
    expected = BytesIO()
    write_mo(expected, read(po))
    return expected.getvalue()
