"""The schedulers' /queue page in headless Chromium, against the referral app served by a
real HTTP server: sign in, filter, cancel a booked referral and watch its slot go to the
next waitlisted one, see outside changes arrive by polling, sign out."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from tests.browser.steps import QUEUE_CONTEXT, sign_in
from tests.referral_support import add_slots, decide, mrn, new_provider, referral_for_report, staff_token

from services.common.envelope import new_traceparent
from services.referral import booking

pytestmark = pytest.mark.browser

D = timedelta(days=1)


@pytest.fixture
def context_options(base_url):
    return {"base_url": base_url, **QUEUE_CONTEXT}


@pytest.fixture
def patients(ref_conn, now):
    """Alice booked into the only slot; Bea (urgent) and Carl (routine) waiting for one."""
    provider = new_provider(ref_conn)
    slot = add_slots(ref_conn, provider, [now + D], now)[0]
    tag = uuid.uuid4().hex[:6]
    made = {}
    for key, care, name, at in (("alice", "specialist", f"Alice Booked {tag}", now),
                                ("carl", "specialist", f"Carl Later {tag}", now + timedelta(minutes=1)),
                                ("bea", "urgent", f"Bea Waiting {tag}", now + timedelta(minutes=2))):
        report_id = decide(ref_conn, care, mrn(), at, name=name)
        made[key] = {"name": name, "report_id": report_id,
                     "referral_id": referral_for_report(ref_conn, report_id)["referral_id"]}
    made.update(slot=slot, provider=provider, now=now, conn=ref_conn)
    return made


def show_report(page, report_id: str) -> None:
    page.get_by_label("Status").select_option("")  # all statuses
    page.get_by_label("Report id").fill(report_id)
    page.get_by_role("button", name="Apply").click()


def row(page, name: str):
    return page.locator("#queue-body tr", has_text=name)


def test_a_scheduler_cancels_a_booking_and_the_slot_goes_to_the_next_waiting_referral(
        page, referral_settings, patients):
    from playwright.sync_api import expect

    alice, bea, carl = patients["alice"], patients["bea"], patients["carl"]
    sign_in(page, "staff_not-a-real-token", heading=False, sign_out=False)
    expect(page.get_by_role("alert")).to_contain_text("not valid")

    sign_in(page, staff_token(referral_settings, "scheduler"))

    # Filter: the waiting urgent referral shows as such, with its window and no appointment.
    page.get_by_label("Priority").select_option("urgent")
    show_report(page, bea["report_id"])
    expect(page).to_have_url(re.compile(r"priority=urgent"))
    bea_row = row(page, bea["name"])
    expect(bea_row).to_have_count(1)
    expect(page.locator("#queue-body tr")).to_have_count(1)
    expect(bea_row).to_contain_text("Urgent")
    expect(bea_row).to_contain_text("waitlisted")
    expect(bea_row.get_by_role("button", name=f"Book: {bea['name']}")).to_be_visible()

    # Alice is booked; cancel her from the page (the dialog insists on a reason).
    page.get_by_label("Priority").select_option("")
    show_report(page, alice["report_id"])
    alice_row = row(page, alice["name"])
    expect(alice_row).to_contain_text("booked")
    expect(alice_row).to_contain_text(patients["provider"]["name"])
    alice_row.get_by_role("button", name=f"Cancel: {alice['name']}").click()
    dialog = page.get_by_role("dialog", name="Cancel referral")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(alice["name"])
    dialog.get_by_label("Reason (required)").fill("Patient is travelling")
    dialog.get_by_role("button", name="Cancel referral").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text(f"Referral for {alice['name']} cancelled.")
    expect(alice_row).to_contain_text("cancelled")
    expect(alice_row.get_by_role("button")).to_have_count(0)

    # The freed slot went to Bea (urgent first), not to Carl (older, but routine).
    show_report(page, bea["report_id"])
    expect(bea_row).to_contain_text("booked")
    expect(bea_row).to_contain_text(patients["provider"]["name"])
    show_report(page, carl["report_id"])
    expect(row(page, carl["name"])).to_contain_text("waitlisted")


def test_the_page_refreshes_by_itself_and_signs_out(page, referral_settings, patients):
    from playwright.sync_api import expect

    bea = patients["bea"]
    sign_in(page, staff_token(referral_settings, "scheduler"))
    show_report(page, bea["report_id"])
    expect(row(page, bea["name"])).to_contain_text("waitlisted")

    # Someone else books Bea (another scheduler, or a freed slot): the page shows it unasked.
    extra = add_slots_now(patients)
    with_conn(referral_settings, lambda conn: booking.reschedule(
        conn, bea["referral_id"], extra, actor="elsewhere", now=patients["now"], traceparent=new_traceparent()))
    expect(row(page, bea["name"])).to_contain_text("booked", timeout=12_000)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Staff token")).to_be_visible()
    page.goto("/queue")
    expect(page.get_by_label("Staff token")).to_be_visible()


def test_a_scheduler_books_a_waiting_referral_into_a_chosen_slot_with_the_keyboard(
        page, referral_settings, patients):
    from playwright.sync_api import expect

    carl = patients["carl"]
    extra = add_slots_now(patients)
    sign_in(page, staff_token(referral_settings, "scheduler"))
    show_report(page, carl["report_id"])
    carl_row = row(page, carl["name"])
    book = carl_row.get_by_role("button", name=f"Book: {carl['name']}")
    book.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Book a slot")
    expect(dialog).to_be_visible()
    day = patients["now"] + 20 * D
    dialog.get_by_label("Free slots from").fill(day.date().isoformat())
    slot_choice = dialog.get_by_label("Slot", exact=True)
    expect(slot_choice.locator(f'option[value="{extra}"]')).to_have_count(1)
    slot_choice.select_option(extra)
    dialog.get_by_role("button", name="Book this slot").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(carl_row).to_contain_text("booked")
    expect(page.get_by_role("status")).to_contain_text(f"{carl['name']} is booked for")


# -- helpers --------------------------------------------------------------------------
def with_conn(settings, work):
    """Run work(conn) on a connection of its own, committed: a change made "elsewhere"."""
    import psycopg

    with psycopg.connect(settings.database_url) as conn:
        return work(conn)


def add_slots_now(patients) -> str:
    """A free slot 20 days into the bubble, outside every window: nobody gets it automatically."""
    conn, now = patients["conn"], patients["now"]
    return add_slots(conn, patients["provider"], [now + 20 * D + timedelta(hours=5)], now)[0]
