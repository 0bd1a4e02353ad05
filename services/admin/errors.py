"""The one error the administration commands raise."""
from __future__ import annotations


class CommandError(Exception):
    """A one-line message for the operator; `clinic` exits with code 1."""
