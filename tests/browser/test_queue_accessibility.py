"""The schedulers' /queue page to WCAG 2.2 AA (issue 18): axe-core finds nothing signed out
or signed in with rows; 44 px targets; no side scrolling of the page at 200% zoom or 320 px
wide (the table scrolls in its own focusable box), screenshotted."""
from __future__ import annotations

import pytest

from tests.browser import accessibility_states as states
from tests.browser.axe_support import SCAN_CONTEXT, assert_no_violations
from tests.browser.steps import QUEUE_CONTEXT, new_page, poll_page
from tests.referral_support import add_slots, decide, mrn, new_provider, staff_token

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1}, **states.SIZES}


@pytest.fixture
def rows(ref_conn, now):
    """A booked specialist referral, a waitlisted urgent one and a waitlisted urgent one whose
    patient speaks Spanish (its language tag scanned with the rest)."""
    from datetime import timedelta

    provider = new_provider(ref_conn)
    add_slots(ref_conn, provider, [now + timedelta(days=3)], now)
    decide(ref_conn, "specialist", mrn(), now, name="Alice Booked")
    decide(ref_conn, "urgent", mrn(), now + timedelta(minutes=1), name="Bea Waiting")
    decide(ref_conn, "urgent", mrn(), now + timedelta(minutes=2), name="Sofía Waiting", language="es")


@pytest.mark.parametrize("size", list(SIZES))
def test_the_queue_signed_out_and_in_passes_axe_and_reflows(browser, base_url, referral_settings, rows, size):
    options = SIZES[size]
    context = browser.new_context(**SCAN_CONTEXT, **QUEUE_CONTEXT, **options)
    page = new_page(context)
    try:
        for state, reach in (("queue signed out", lambda: states.queue_signed_out(page, base_url)),
                             ("queue signed in", lambda: states.queue_signed_in(
                                 page, base_url, staff_token(referral_settings, "scheduler")))):
            reach()
            assert_no_violations(page, f"{state} ({size})")
            scroll_width, width = states.horizontal_overflow(page)
            assert scroll_width <= width, f"{state} at {size}: {scroll_width} px of content in {width} px"
            assert states.small_targets(page) == [], f"targets under 44x44 CSS px on {state} at {size}"
            shot = states.full_page_shot(page, states.shot_name(state, size))
            assert states.png_size(shot)[0] == options["viewport"]["width"] * options["device_scale_factor"]
    finally:
        context.close()


def test_the_table_box_scrolls_from_the_keyboard(browser, base_url, referral_settings, rows):
    from playwright.sync_api import expect

    context = browser.new_context(**QUEUE_CONTEXT, **states.NARROW_320)
    page = new_page(context)
    try:
        states.queue_signed_in(page, base_url, staff_token(referral_settings, "scheduler"))
        box = page.get_by_role("region", name="Referrals, urgent first")
        box.focus()
        expect(box).to_be_focused()
        page.keyboard.press("ArrowRight")
        assert poll_page(page, "() => document.querySelector('.table-scroll').scrollLeft") > 0
    finally:
        context.close()
