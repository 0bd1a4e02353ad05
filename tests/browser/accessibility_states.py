"""The pages' states the accessibility checks look at, reached as a patient or a scheduler
would, and what is measured in each (touch targets, horizontal scrolling, screenshots).
Shared by the accessibility tests and `python -m tests.browser.accessibility_report`."""
from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.browser.steps import OUTCOME_TIMEOUT_MS, choose, fill_self_care_report

REPO = Path(__file__).resolve().parents[2]
SHOTS_DIR = REPO / ".state" / "accessibility"
MIN_TARGET_PX = 44
# 200% zoom of a 1280x800 screen: the page sees 640x400 CSS px, drawn with 2 device px each.
ZOOM_200 = {"viewport": {"width": 640, "height": 400}, "device_scale_factor": 2}
NARROW_320 = {"viewport": {"width": 320, "height": 640}, "device_scale_factor": 1}
# Answers that give each care level (services/triage/rules/care-rules.yaml): the rules'
# self-care example, changed in one answer.
CARE_LEVEL_WORDS = {"urgent": "See a clinician promptly", "specialist": "See a specialist",
                    "self_care": "Care for it at home"}


# -- the kiosk -------------------------------------------------------------------------------
def open_kiosk(page, kiosk_url: str, key: str | None) -> None:
    """The kiosk form with `key` stored as setup stores it (None: a kiosk not set up)."""
    page.goto(kiosk_url)
    if key is None:
        page.evaluate("window.localStorage.removeItem('clinic.kioskKey')")
        page.reload()
        page.get_by_role("heading", name="This kiosk is not set up").wait_for()
        return
    page.evaluate("key => window.localStorage.setItem('clinic.kioskKey', key)", key)
    page.reload()
    page.get_by_role("heading", name="Tell us about your hip pain").wait_for()


def fill_by_ids(page, *, mrn: str, joint_locking: str = "no") -> None:
    """The rules' self-care example in any of the kiosk's languages (the inputs' ids are the
    API's paths, whatever the words); joint_locking "yes" makes it a specialist case."""
    today = datetime.now(UTC).date()

    def fill_date(path: str, day) -> None:
        for part, value in (("day", day.day), ("month", day.month), ("year", day.year)):
            page.locator(f"#{path}-{part}").fill(str(value))

    page.locator("#patient-mrn").fill(mrn)
    page.locator("#patient-given_name").fill("Lucía")
    page.locator("#patient-family_name").fill("García")
    fill_date("patient-birth_date", today.replace(year=today.year - 30))
    page.locator("#activity-sport").fill("ciclismo")
    for choice in ("activity-high_impact-no", "pain-locations-outer_hip", "pain-side-left", "pain-severity-4",
                   "pain-onset-gradual", "pain-direct_trauma-no", f"function-joint_locking-{joint_locking}",
                   "function-instability-no", "function-persistent_dysfunction-no"):
        page.locator(f"#{choice}").check()
    fill_date("pain-started_on", today - timedelta(days=5))


def send_and_wait_for_errors(page) -> None:
    page.get_by_role("button", name="Send my answers").click()
    page.locator("#error-summary:not([hidden])").wait_for()


def show_format_errors(page) -> None:
    """Answers in the wrong format (dates, phone, email, days tried), the rest left empty."""
    page.get_by_role("group", name="Date of birth").get_by_label("Day").fill("31")
    page.get_by_role("group", name="Date of birth").get_by_label("Month").fill("13")
    page.get_by_role("group", name="Date of birth").get_by_label("Year").fill("90")
    page.get_by_label("Phone number (optional)").fill("12")
    page.get_by_label("Email address (optional)").fill("ana.silva@example")
    page.get_by_role("group", name="When did the pain start?").get_by_label("Day").fill("x")
    page.get_by_role("group", name="Which of these have you tried for the pain?").get_by_label("Rest").check()
    page.get_by_label("For how many days have you tried them?").fill("many")
    send_and_wait_for_errors(page)


def fill_for_care_level(page, level: str, mrn: str) -> None:
    fill_self_care_report(page, mrn=mrn)
    if level == "urgent":
        choose(page, "How bad is the pain?", "8")            # severe pain
    elif level == "specialist":
        choose(page, "Does your hip lock or catch?", "Yes")  # a hip that locks


def send_and_wait_for_outcome(page, level: str, status: str | None = None) -> None:
    """Send the form and wait for the outcome of `level` (and, if given, the status words)."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Send my answers").click()
    expect(page.locator("#outcome-care-level")).to_have_text(CARE_LEVEL_WORDS[level], timeout=OUTCOME_TIMEOUT_MS)
    if status:
        expect(page.locator("#outcome-status")).to_have_text(status, timeout=OUTCOME_TIMEOUT_MS)


def add_slots_soon(referral_url: str, admin_token: str, days: int, count: int) -> None:
    """Free slots `days` from now (outside the urgent window, inside the routine one for 3 to
    14): a specialist referral made next is booked into one, an urgent one is waitlisted."""
    import uuid

    import requests

    headers = {"Authorization": f"Bearer {admin_token}"}
    provider = requests.post(f"{referral_url}/v1/providers", headers=headers, timeout=10, json={
        "name": f"Accessibility clinic {uuid.uuid4().hex[:6]}", "specialty": "pain_management",
        "location": "Room 2"}).json()
    start = (datetime.now(UTC) + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    slots = [{"provider_id": provider["provider_id"], "start": (start + timedelta(minutes=30 * n)).isoformat(),
              "end": (start + timedelta(minutes=30 * n + 30)).isoformat()} for n in range(count)]
    response = requests.post(f"{referral_url}/v1/slots", headers=headers, timeout=10, json=slots)
    assert response.status_code == 201, response.text


# -- measures ------------------------------------------------------------------------------
# Every visible thing a finger can press: buttons, links, text boxes; for a radio or a
# checkbox, the label tile around it (the input alone may be small or invisible).
TARGETS_JS = """() => {
  const seen = [];
  const visible = (el) => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0
                            && getComputedStyle(el).visibility !== "hidden"; };
  const name = (el) => (el.id ? "#" + el.id : el.tagName.toLowerCase()) + " " +
                       JSON.stringify((el.textContent || el.value || "").trim().slice(0, 40));
  const scope = document.querySelector("dialog[open]") || document;
  for (const el of scope.querySelectorAll("button, a[href], input, select, textarea, summary")) {
    if (el.type === "hidden") continue;
    const target = (el.type === "radio" || el.type === "checkbox") ? (el.closest("label") || el) : el;
    if (!visible(target) || seen.some((s) => s.el === target)) continue;
    const r = target.getBoundingClientRect();
    seen.push({el: target, what: name(target), width: Math.round(r.width * 10) / 10,
               height: Math.round(r.height * 10) / 10});
  }
  return seen.map(({what, width, height}) => ({what, width, height}));
}"""


def touch_targets(page) -> list[dict]:
    """{what, width, height} (CSS px) of every visible interactive element (in an open modal
    dialog, only its own: the rest cannot be pressed then)."""
    return page.evaluate(TARGETS_JS)


def small_targets(page, minimum: float = MIN_TARGET_PX) -> list[dict]:
    return [t for t in touch_targets(page) if t["width"] < minimum or t["height"] < minimum]


def horizontal_overflow(page) -> tuple[int, int]:
    """(scrollWidth, clientWidth) of the document: more than the width means side scrolling."""
    return tuple(page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]"))


def full_page_shot(page, name: str) -> Path:
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's header."""
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def dump(value) -> str:
    return json.dumps(value, indent=1)


# -- the states, by name ----------------------------------------------------------------------
class KioskEnv:
    """What reaching the kiosk's states needs: its URL, a kiosk key, a staff token for setup,
    the referral API and an admin token (to add the slots a booked outcome needs)."""

    def __init__(self, stack):
        self.kiosk_url = stack.base_url["intake"] + "/kiosk"
        self.referral_url = stack.base_url["referral"]
        self.key = stack.kiosk_key()
        self.staff_token = stack.staff_token("scheduler")
        self.admin_token = stack.staff_token("admin")


def _setup_staff_step(page, env):
    page.goto(env.kiosk_url + "/setup")
    page.get_by_label("Your staff token").wait_for()


def _setup_key_step(page, env):
    from tests.browser.steps import staff_sign_in

    _setup_staff_step(page, env)
    staff_sign_in(page, env.staff_token)
    page.get_by_label("Kiosk key").wait_for()


def _format_errors(page, env):
    open_kiosk(page, env.kiosk_url, env.key)
    show_format_errors(page)


def _required_errors(page, env):
    open_kiosk(page, env.kiosk_url, env.key)
    send_and_wait_for_errors(page)


def _outcome(level: str, status: str, slots: bool = False):
    def reach(page, env):
        if slots:
            add_slots_soon(env.referral_url, env.admin_token, days=7, count=3)
        open_kiosk(page, env.kiosk_url, env.key)
        fill_for_care_level(page, level, mrn=f"MRN-A11Y-{level.upper()}")
        send_and_wait_for_outcome(page, level, status)
    return reach


# The Spanish kiosk (issue 18): longer words in the same boxes.
def _spanish_form(page, env):
    open_kiosk_in(page, env.kiosk_url + "?lang=es", env.key)


def _spanish_errors(page, env):
    _spanish_form(page, env)
    page.get_by_role("button", name="Enviar mis respuestas").click()
    page.locator("#error-summary:not([hidden])").wait_for()


def _spanish_outcome(page, env):
    from playwright.sync_api import expect

    add_slots_soon(env.referral_url, env.admin_token, days=7, count=2)
    _spanish_form(page, env)
    fill_by_ids(page, mrn="MRN-A11Y-ES", joint_locking="yes")
    page.get_by_role("button", name="Enviar mis respuestas").click()
    expect(page.locator("#outcome-status")).to_have_text("Su cita está reservada.", timeout=OUTCOME_TIMEOUT_MS)


def open_kiosk_in(page, url: str, key: str) -> None:
    """The kiosk at `url` (any language) with `key` stored as setup stores it."""
    page.goto(url)
    page.evaluate("key => window.localStorage.setItem('clinic.kioskKey', key)", key)
    page.reload()
    page.locator("#report-form:not([hidden])").wait_for()


def _idle_warning(first):
    def reach(page, env):
        page.clock.install()
        first(page, env)
        if not page.locator("#outcome").is_visible():
            page.get_by_label("First name").fill("Ana")
        page.clock.fast_forward("01:31")
        page.get_by_role("dialog", name="Are you still there?").wait_for()
    return reach


KIOSK_STATES = {
    "kiosk not set up": lambda page, env: open_kiosk(page, env.kiosk_url, None),
    "setup: staff token step": _setup_staff_step,
    "setup: kiosk key step": _setup_key_step,
    "form: empty": lambda page, env: open_kiosk(page, env.kiosk_url, env.key),
    "form: every required answer missing": _required_errors,
    "form: answers in the wrong format": _format_errors,
    "outcome: self care": _outcome("self_care", "You do not need an appointment now."),
    "outcome: specialist, booked": _outcome("specialist", "Your appointment is booked.", slots=True),
    "outcome: urgent, waiting list": _outcome("urgent", "You are on the waiting list for an appointment."),
    "idle warning: form": _idle_warning(lambda page, env: open_kiosk(page, env.kiosk_url, env.key)),
    "idle warning: outcome": _idle_warning(_outcome("self_care", "You do not need an appointment now.")),
    "Spanish form: empty": _spanish_form,
    "Spanish form: every answer missing": _spanish_errors,
    "Spanish outcome: specialist, booked": _spanish_outcome,
}
# The states looked at at 200% zoom and 320 px wide (each screenshotted).
REFLOW_STATES = ["form: empty", "form: every required answer missing", "outcome: self care",
                 "setup: staff token step", "Spanish form: every answer missing", "Spanish outcome: specialist, booked"]
SIZES = {"200% zoom": ZOOM_200, "320 px": NARROW_320}


def shot_name(state: str, size: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in f"{state} {size}".lower()).strip("-").replace("--", "-")


# -- the queue -------------------------------------------------------------------------------
def queue_signed_out(page, referral_url: str) -> None:
    page.goto(referral_url + "/queue")
    page.get_by_label("Staff token").wait_for()


def queue_signed_in(page, referral_url: str, token: str) -> None:
    """Signed in, with the queue's rows drawn (all statuses, so closed ones show too)."""
    from tests.browser.steps import sign_in

    sign_in(page, token, referral_url + "/queue")
    page.get_by_label("Status").select_option("")
    page.locator("#queue-body tr").first.wait_for()


# -- the keyboard only -------------------------------------------------------------------------
def tab_to(page, selector: str, steps: list[str], back: bool = False, limit: int = 60) -> None:
    """Press Tab (Shift+Tab if `back`) until the focused element matches `selector`."""
    key = "Shift+Tab" if back else "Tab"
    for presses in range(1, limit + 1):
        page.keyboard.press(key)
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            steps.append(f"{key} ×{presses} to {selector}")
            return
    raise AssertionError(f"{key} ×{limit} never reached {selector}; focus is on "
                         + page.evaluate("document.activeElement.outerHTML.slice(0, 120)"))


def press(page, key: str, steps: list[str], times: int = 1) -> None:
    for _ in range(times):
        page.keyboard.press(key)
    steps.append(f"{key}" + (f" ×{times}" if times > 1 else ""))


def type_text(page, text: str, steps: list[str]) -> None:
    page.keyboard.type(text)
    steps.append(f"type {text!r}")


def fill_and_send_by_keyboard(page, steps: list[str]) -> None:
    """The rules' self-care example, answered with Tab, Shift+Tab, Space, arrows, typing and
    Enter only, from a freshly loaded form; each step is added to `steps`."""
    today = datetime.now(UTC).date()
    born, started = today.replace(year=today.year - 30), today - timedelta(days=5)

    def text(selector, value):
        tab_to(page, selector, steps)
        type_text(page, value, steps)

    def date(prefix, day):
        for part, value in (("day", day.day), ("month", day.month), ("year", day.year)):
            text(f"#{prefix}-{part}", str(value))

    text("#patient-mrn", "MRN-KEYS-1")
    text("#patient-given_name", "Ana")
    text("#patient-family_name", "Silva")
    date("patient-birth_date", born)
    tab_to(page, "#patient-birth_date-day", steps, back=True)   # back to check the day, then on
    text("#activity-sport", "running")
    tab_to(page, "#activity-high_impact-yes", steps)
    press(page, "Space", steps)
    tab_to(page, "#pain-locations-outer_hip", steps)
    press(page, "Space", steps)
    tab_to(page, "#pain-side-left", steps)
    press(page, "Space", steps)
    tab_to(page, "#pain-severity-0", steps)
    press(page, "ArrowRight", steps, times=4)                    # 0 -> 4, checked as it moves
    tab_to(page, "#pain-onset-sudden", steps)
    press(page, "ArrowRight", steps)                             # -> "Gradually, over time"
    date("pain-started_on", started)
    for question in ("pain-direct_trauma", "function-joint_locking", "function-instability",
                     "function-persistent_dysfunction"):
        tab_to(page, f"#{question}-yes", steps)
        press(page, "ArrowRight", steps)                         # -> "No"
    tab_to(page, "#send", steps)
    press(page, "Enter", steps)
