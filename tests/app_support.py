"""Helpers for tests that use one service's app or database role directly."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import psycopg
from flask import Flask

from services.common.settings import Settings


@contextlib.contextmanager
def flask_app(create_app: Callable[[Settings], Flask], settings: Settings) -> Iterator[Flask]:
    """A service's app (for its test client), its connection pool closed afterwards."""
    app = create_app(settings)
    try:
        yield app
    finally:
        app.extensions["clinic"].pool.close()


@contextlib.contextmanager
def role_conn(settings: Settings) -> Iterator[psycopg.Connection]:
    """A connection as the service's role, autocommit: every query sees the latest commits."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        yield conn
