"""From a slot being added to the waitlisted patient's email (issue 19), on the whole stack.

    .venv/bin/python tests/bench/bench_waitlist_message.py [--patients 20]

Not a test (pytest does not collect bench_*.py). It starts its own stack as `make run` does
(`python -m infra.stack`, temporary state folder, free ports, no demo data: no provider, so
every urgent report is waitlisted), sends `--patients` urgent reports whose patients consent
to email, waits until all are waitlisted, then adds one slot at a time in their window
(`POST /v1/slots`, which hands it at once to the oldest waitlisted referral) and times each
from the request to the "booked" email's file in the stack's mail sink: referral API ->
outbox -> Kafka -> intake worker (decide, write the message row) -> sender -> SMTP -> file.

The ceiling, measured in the same run against the same sink: an email of the same size sent
with smtplib straight to the sink, timed to its file, with none of the stack in between.
"""
from __future__ import annotations

import argparse
import email
import smtplib
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e.flow_helpers import URGENT, report_body, submit, wait_for_report  # noqa: E402
from tests.live_stack import running_stack  # noqa: E402

BOOKED_SUBJECT = "Your appointment is booked"


def mail_files(stack) -> list[Path]:
    return sorted((stack.state_dir / "mail").glob("*.eml"))


def wait_for_new_mail(stack, seen: int, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = mail_files(stack)
        if len(files) > seen:
            return files[seen]
        time.sleep(0.002)
    raise SystemExit(f"no email within {timeout:.0f} s of the slot (after {seen} emails)")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values_ms: list[float]) -> str:
    return (f"{name:<44} p50 {statistics.median(values_ms):7.1f} ms   p95 {percentile(values_ms, 0.95):7.1f} ms"
            f"   max {max(values_ms):7.1f} ms   (n={len(values_ms)})")


def waitlist_patients(stack, count: int) -> list[str]:
    key = stack.kiosk_key()
    intake = stack.base_url["intake"]
    addresses, report_ids = [], []
    for _ in range(count):
        address = f"bench-{uuid.uuid4().hex[:10]}@example.org"
        body = report_body(**URGENT)
        body["patient"].update(email=address, contact_consent=["email"])
        response = submit(intake, key, body)
        response.raise_for_status()
        addresses.append(address)
        report_ids.append(response.json()["report_id"])
    for report_id in report_ids:
        view = wait_for_report(intake, key, report_id, timeout=120)
        assert view["status"] == "waitlisted", view  # no provider yet: nothing to book
    return addresses


def slot_to_email(stack, admin: str, count: int) -> list[float]:
    referral = stack.base_url["referral"]
    headers = {"Authorization": f"Bearer {admin}"}
    provider = requests.post(f"{referral}/v1/providers", headers=headers, timeout=30, json={
        "name": "Bench clinic", "specialty": "pain_management", "location": "Room B"})
    provider.raise_for_status()
    provider_id = provider.json()["provider_id"]
    first = (datetime.now(UTC) + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    latencies = []
    for i in range(count):
        seen = len(mail_files(stack))
        start = first + i * timedelta(minutes=40)
        began = time.perf_counter()
        response = requests.post(f"{referral}/v1/slots", headers=headers, timeout=30, json={
            "provider_id": provider_id, "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()})
        response.raise_for_status()
        path = wait_for_new_mail(stack, seen)
        latencies.append((time.perf_counter() - began) * 1000)
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message["Subject"].startswith(BOOKED_SUBJECT), message["Subject"]
    return latencies


def smtp_alone(stack, sample: Path, count: int) -> list[float]:
    """The same sink, the same size of message, straight from smtplib."""
    template = email.message_from_bytes(sample.read_bytes(), policy=policy.default)
    port = int(stack.env["CLINIC_MAIL_SINK_PORT"])
    latencies = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        for _ in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "bench@clinic.localhost", template["To"], "ceiling"
            message.set_content(template.get_body(("plain",)).get_content(), cte="quoted-printable")
            seen = len(mail_files(stack))
            began = time.perf_counter()
            smtp.send_message(message)
            wait_for_new_mail(stack, seen)
            latencies.append((time.perf_counter() - began) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20)
    args = parser.parse_args()
    with running_stack(prefix="clinic-bench-waitlist-", ready_timeout=300) as stack:
        admin = stack.staff_token("admin")
        waitlist_patients(stack, args.patients)
        while len(mail_files(stack)) < args.patients:  # each is told "waiting list" first
            wait_for_new_mail(stack, len(mail_files(stack)))
        told_waitlisted = len(mail_files(stack))
        stack_ms = slot_to_email(stack, admin, args.patients)
        ceiling_ms = smtp_alone(stack, mail_files(stack)[-1], args.patients)
    print(f"waitlisted patients: {args.patients} (each told so first: {told_waitlisted} emails)")
    print(summary("slot added -> waitlisted patient's email", stack_ms))
    print(summary("ceiling: smtplib -> same sink -> file", ceiling_ms))


if __name__ == "__main__":
    main()
