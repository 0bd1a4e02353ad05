"""Fixtures of the browser tests: Debian's Chromium, a page in a fresh context, the referral
app (its /queue page) served by a real HTTP server. A module adjusts them by overriding
`chromium_args` (the browser's command line) or `context_options` (each page's context)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.steps import CHROMIUM, CHROMIUM_ARGS, open_page, serving


@pytest.fixture(scope="module")
def chromium_args() -> list[str]:
    return CHROMIUM_ARGS


@pytest.fixture(scope="module")
def browser(chromium_args):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make deps)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args)
        yield browser
        browser.close()


@pytest.fixture
def context_options() -> dict:
    return {}


@pytest.fixture
def page(browser, context_options):
    # A fresh context per test: its own cookies and empty localStorage (for a kiosk: a new kiosk).
    context, page = open_page(browser, **context_options)
    yield page
    context.close()


@pytest.fixture(scope="module")
def base_url(request, referral_settings):
    """The referral app, /queue page included, on a real HTTP server in a thread."""
    from services.referral.app import create_app

    with serving(create_app(referral_settings), name=f"{request.module.__name__}-server") as url:
        yield url
