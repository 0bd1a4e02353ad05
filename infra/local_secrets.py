"""Random secrets for a local stack, made once per state folder and kept under
<state>/secrets/ (mode 700, files 600), named after the settings that read them
(services/common/secrets.py): `make run` and the test runners start with secrets no
one else has, and `.venv/bin/clinic` finds them there."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from services.common.secret_sources import local_secrets_dir


def ensure_local_secret(state_dir: Path, name: str) -> str:
    """The secret NAME of this state folder, made (random, 256 bits) on first use."""
    folder = local_secrets_dir(state_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    if not path.is_file():
        # Several processes may start on one fresh folder at once (three bootstraps, a
        # runner and `clinic`): the secret is written whole under a private name, then
        # linked into place, which fails if another got there first. Every caller then
        # reads the one winner, never a half-written or overwritten file.
        draft = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        write_private(draft, secrets.token_urlsafe(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, also when it existed with looser modes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w") as out:
        os.fchmod(fd, 0o600)
        out.write(text)
