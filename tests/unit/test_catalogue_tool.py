"""services/common/catalogue_tool.py on a catalogue of its own: a new language is started,
a changed English text goes fuzzy and out of the .mo, --check writes nothing, and a run that
would change only the dates changes nothing."""
from __future__ import annotations

import gettext
from datetime import UTC, datetime

from babel.messages.catalog import Catalog

from tests.catalogue_support import read

from services.common import catalogue_tool
from services.common.catalogue_files import catalogue_path, load_compiled

DOMAIN = catalogue_tool.Domain(name="demo", header="# {language} demo texts.")


def template(*texts: str, made: datetime = datetime(2029, 1, 1, tzinfo=UTC)) -> Catalog:
    catalog = Catalog(domain="demo", project="demo project", version="2", fuzzy=False, creation_date=made)
    for text in texts:
        catalog.add(text)
    return catalog


def test_init_update_translate_and_compile(tmp_path):
    changed = catalogue_tool.update(template("Hello", "Goodbye"), tmp_path, DOMAIN, init="es")
    po = catalogue_path(tmp_path, "demo", "es")
    assert changed == [tmp_path / "demo.pot", po, po.with_suffix(".mo")]
    assert read(po).header_comment.startswith("# Spanish demo texts.")
    assert dict(read(po).mime_headers)["Project-Id-Version"] == "demo project 2"

    po.write_text(po.read_text().replace('msgid "Hello"\nmsgstr ""', 'msgid "Hello"\nmsgstr "Hola"'))
    assert catalogue_tool.update(template("Hello", "Goodbye"), tmp_path, DOMAIN, check=True) == [po.with_suffix(".mo")]
    assert catalogue_tool.update(template("Hello", "Goodbye"), tmp_path, DOMAIN) == [po.with_suffix(".mo")]
    assert load_compiled(tmp_path, "demo", ["es"], texts="demo", command="-")["es"].gettext("Hello") == "Hola"

    # the English changed: the old translation is only a fuzzy suggestion, left out of the .mo
    catalogue_tool.update(template("Hello!", "Goodbye"), tmp_path, DOMAIN)
    assert read(po).get("Hello!").fuzzy
    compiled = load_compiled(tmp_path, "demo", ["es"], texts="demo", command="-")["es"]
    assert isinstance(compiled, gettext.GNUTranslations) and compiled.gettext("Hello!") == "Hello!"


def test_check_writes_nothing_and_dates_alone_change_nothing(tmp_path):
    catalogue_tool.update(template("Hello"), tmp_path, DOMAIN, init="es")
    files = sorted(path for path in tmp_path.rglob("*") if path.is_file())
    before = {path: path.read_bytes() for path in files}

    assert catalogue_tool.update(template("Hello", "New"), tmp_path, DOMAIN, check=True) != []
    assert {path: path.read_bytes() for path in files} == before

    # a later run's template has another creation date: nothing is rewritten
    assert catalogue_tool.update(template("Hello", made=datetime(2030, 1, 1, tzinfo=UTC)), tmp_path, DOMAIN) == []
    assert {path: path.read_bytes() for path in files} == before
