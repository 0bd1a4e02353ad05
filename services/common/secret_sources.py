"""Where a secret setting comes from. None has a usable default: a secret is read from the
environment (NAME), from a file named there (NAME_FILE: compose and Docker secrets), or
from the local state folder's secrets/ (written, random, by `make run` and the test
runners on their first start, mode 600). Absent from all three, it is unset, and what
needs it refuses to start saying which setting is missing.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class MissingSecret(RuntimeError):
    """A secret the process needs is set nowhere."""

    def __init__(self, name: str):
        super().__init__(f"{name} is not set: give it in the environment, or the path of a file holding it"
                         f" in {name}_FILE (`make run` makes one for itself under .state/secrets/)")
        self.name = name


def local_secrets_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "secrets"


def read_secret(env: Mapping[str, str], name: str, state_dir: Path) -> str | None:
    """The secret NAME from the environment, NAME_FILE, or the local secrets folder; None if unset."""
    if value := env.get(name):
        return value
    if path := env.get(f"{name}_FILE"):
        return Path(path).read_text().strip() or None
    local = local_secrets_dir(state_dir) / name
    if local.is_file():
        return local.read_text().strip() or None
    return None
