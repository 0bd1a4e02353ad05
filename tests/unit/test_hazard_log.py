"""The clinical hazard log (docs/clinical-safety/hazard-log.md) names the tests that prove each
control; a control whose test does not exist (file or function) fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "docs" / "clinical-safety" / "hazard-log.md"
NODE_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
REQUIRED_HAZARDS = ("Missed urgency", "Wrong patient linked", "Lost report", "Stale rules",
                    "Advice shown to the wrong patient", "Unsafe self-care")


def hazards() -> dict[str, str]:
    """Hazard heading -> its text."""
    parts = re.split(r"^## ", LOG.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    return {part.splitlines()[0]: part for part in parts}


def node_ids() -> list[tuple[str, str]]:
    return NODE_ID.findall(LOG.read_text(encoding="utf-8"))


def test_the_log_covers_the_required_hazards_each_with_cause_effect_controls_and_residual_risk():
    found = hazards()
    for required in REQUIRED_HAZARDS:
        assert any(required in heading for heading in found), required
    for heading, text in found.items():
        for part in ("**Causes.**", "**Effect.**", "**Controls and the tests that prove them.**",
                     "**Residual risk.**"):
            assert part in text, f"{heading}: {part}"


def test_every_control_names_at_least_one_test():
    for heading, text in hazards().items():
        controls = text.split("**Controls and the tests that prove them.**")[1].split("**Residual risk.**")[0]
        items = re.split(r"^\s+\d+\.\s", controls, flags=re.MULTILINE)[1:]
        assert items, heading
        for item in items:
            assert NODE_ID.search(item), f"{heading}: a control without a test: {item.strip()[:80]}"


def test_the_log_names_tests():
    assert len(node_ids()) >= 40


def problem(path: str, function: str) -> str | None:
    """Why `path::function` does not name an existing test function, or None."""
    source = ROOT / path
    if not source.is_file():
        return f"{path} does not exist"
    if not re.search(rf"^(async )?def {function}\(", source.read_text(encoding="utf-8"), re.MULTILINE):
        return f"{path} has no test function {function}"
    return None


@pytest.mark.parametrize(("path", "function"), sorted(set(node_ids())), ids="::".join)
def test_every_named_test_exists(path, function):
    assert problem(path, function) is None


def test_a_missing_file_or_function_is_caught():
    assert problem("tests/unit/test_hazard_log.py", "test_every_named_test_exists") is None
    assert problem("tests/unit/test_hazard_log.py", "test_that_does_not_exist") == \
        "tests/unit/test_hazard_log.py has no test function test_that_does_not_exist"
    assert problem("tests/unit/test_no_such_file.py", "test_x") == "tests/unit/test_no_such_file.py does not exist"
    # a name that only starts like an existing one does not count
    assert problem("tests/unit/test_hazard_log.py", "test_every_named") is not None
