"""The queue and kiosk pages in Debian's Chromium through the TLS proxy (Debian's nginx,
infra/proxy) in front of the live stack, as `CLINIC_TLS_PROXY=1 make run` runs it.

Chromium reaches the proxy as https://clinic.test (its host resolver maps the name to
127.0.0.1): not a loopback name, so the session cookie is `Secure` and `__Host-` only because
the service believed the proxy's X-Forwarded-Proto (ProxyFix), as it will under compose. The
generated certificate names localhost, hence ignore_https_errors for this one name."""
from __future__ import annotations

import pytest

from tests.browser.steps import CHROMIUM_ARGS, KIOSK_SCREEN, OUTCOME_TIMEOUT_MS, fill_self_care_report, new_page, \
    set_up_kiosk

pytestmark = pytest.mark.browser

HOST = "clinic.test"
HSTS = "max-age=31536000; includeSubDomains"


@pytest.fixture(scope="module")
def chromium_args():
    return [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1"]


@pytest.fixture
def proxy_base(tls_live_stack):
    return f"https://{HOST}:{tls_live_stack.proxy_url.rsplit(':', 1)[1]}"


@pytest.fixture
def context(browser, proxy_base):
    context = browser.new_context(base_url=proxy_base, ignore_https_errors=True,
                                  viewport=KIOSK_SCREEN)
    yield context
    context.close()


def test_the_queue_page_signs_in_through_the_proxy_with_a_secure_host_cookie(context, tls_live_stack, proxy_base):
    from playwright.sync_api import expect

    page = new_page(context)
    response = page.goto("/queue")
    assert response.status == 200 and page.url == f"{proxy_base}/queue"
    assert response.headers["strict-transport-security"] == HSTS
    page.get_by_label("Staff token").fill(tls_live_stack.staff_token("scheduler", name="tls-queue"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    expect(page.get_by_text("tls-queue")).to_be_visible()
    assert page.url.startswith(f"{proxy_base}/queue")  # the sign-in's redirect stayed on https

    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["__Host-clinic_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict"
    assert session["path"] == "/" and session["domain"] == HOST  # host-only: no Domain attribute
    assert "clinic_session" not in cookies
    # The page's own API calls ride on the cookie through the proxy.
    assert page.evaluate("fetch('/v1/referrals').then(r => r.status)") == 200

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Staff token")).to_be_visible()
    assert "__Host-clinic_session" not in {c["name"] for c in context.cookies()}
    assert page.evaluate("fetch('/v1/referrals').then(r => r.status)") == 401


def test_a_kiosk_sends_a_report_through_the_proxy(context, tls_live_stack, proxy_base):
    from playwright.sync_api import expect

    page = new_page(context)
    set_up_kiosk(page, f"{proxy_base}/kiosk", tls_live_stack.kiosk_key(), tls_live_stack.staff_token())
    fill_self_care_report(page)
    with page.expect_response(lambda r: r.url == f"{proxy_base}/v1/reports" and r.request.method == "POST") as sent:
        page.get_by_role("button", name="Send my answers").click()
    assert sent.value.status == 202
    assert sent.value.headers["strict-transport-security"] == HSTS

    expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(page.locator("#outcome-care-level")).to_have_text("Care for it at home", timeout=OUTCOME_TIMEOUT_MS)
