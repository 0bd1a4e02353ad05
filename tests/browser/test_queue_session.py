"""The queue page's session in headless Chromium against the live stack (`make run`'s
referral API on http://127.0.0.1): the cookie Chromium keeps, sign-out ending the session
so that a copy of the cookie in another browser no longer works."""
from __future__ import annotations

import pytest

from tests.browser.steps import open_page, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def queue_url(live_stack):
    return live_stack.base_url["referral"]


def test_sign_in_and_sign_out_end_the_session_for_every_copy_of_the_cookie(browser, live_stack, queue_url):
    from playwright.sync_api import expect

    context, page = open_page(browser, base_url=queue_url)
    sign_in(page, live_stack.staff_token("scheduler", name="queue-browser"), heading=False, sign_out=False)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_text("queue-browser")).to_be_visible()

    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["__Host-clinic_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    assert session["path"] == "/" and session["domain"] == "127.0.0.1"  # host-only: no Domain attribute
    assert "clinic_session" not in cookies

    # A second browser holding a copy of the cookie is signed in too...
    other, copy = open_page(browser, base_url=queue_url)
    other.add_cookies([{k: session[k] for k in ("name", "value", "domain", "path", "secure", "httpOnly",
                                                "sameSite")}])
    copy.goto("/queue")
    expect(copy.get_by_role("button", name="Sign out")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Staff token")).to_be_visible()
    assert "__Host-clinic_session" not in {c["name"] for c in context.cookies()}

    # ...until sign-out, which ended the session on the server.
    copy.reload()
    expect(copy.get_by_label("Staff token")).to_be_visible()
    assert copy.evaluate("fetch('/v1/referrals').then(r => r.status)") == 401
    other.close()
    context.close()
