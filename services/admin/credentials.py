"""Kiosk keys (intake's) and staff tokens (identity's): made, printed once, stored as
hashes, revoked at once."""
from __future__ import annotations

import psycopg

from services.common import identity
from services.common.auth import hash_secret, new_secret
from services.common.settings import Settings

from . import identity_copies
from .database import service_connection
from .errors import CommandError


def kiosk_add(settings: Settings, name: str) -> str:
    from services.intake import store

    key = new_secret("kiosk")
    with service_connection(settings, "intake") as conn:
        try:
            store.add_kiosk(conn, name, key)
        except psycopg.errors.UniqueViolation:
            raise CommandError(f"a kiosk named {name!r} already exists") from None
    return key


def kiosk_revoke(settings: Settings, name: str) -> None:
    from services.intake import store

    with service_connection(settings, "intake") as conn:
        if not store.revoke_kiosk(conn, name):
            raise CommandError(f"no active kiosk named {name!r}")


# Staff identity is written only here, as the admin role (the service roles may only read
# it), in every database the services use (identity_copies.py).
def staff_add(settings: Settings, name: str, role: str) -> str:
    token = new_secret("staff")
    try:
        identity_copies.add_staff(settings, name, role, hash_secret(token))
    except identity.StaffNameTaken:
        raise CommandError(f"a staff member named {name!r} already exists") from None
    return token


def staff_revoke(settings: Settings, name: str) -> None:
    if not identity_copies.revoke_staff(settings, name):
        raise CommandError(f"no active staff member named {name!r}")
