"""Every catalogue tool finds nothing to regenerate (issue 18): a text changed in the rule
file, compose.py or the kiosk's sources without `make translations` fails here, naming the
files that run would write."""
from __future__ import annotations

import importlib

import pytest

TOOLS = ["services.triage.rules.catalogue", "services.intake.messages.catalogue", "services.intake.kiosk_catalogue"]


@pytest.mark.parametrize("tool", TOOLS)
def test_the_tool_finds_every_file_up_to_date(tool, capsys):
    assert importlib.import_module(tool).main(["--check"]) == 0, f"run `make translations`:\n{capsys.readouterr().out}"
    assert capsys.readouterr().out == ""
