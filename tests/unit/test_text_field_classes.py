"""The character classes of services/common/fields.py are written out (computing them scans
every code point, over a second at each process start); they must be what the running
Python's Unicode database says."""
from __future__ import annotations

import unicodedata

from services.common import fields


def test_the_written_out_classes_are_those_of_this_pythons_unicode():
    assert fields._SPACE == fields.space_class(), f"Unicode {unicodedata.unidata_version}: rewrite _SPACE"
    assert fields._REFUSED == fields.refused_class(), f"Unicode {unicodedata.unidata_version}: rewrite _REFUSED"
