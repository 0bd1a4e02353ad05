"""`clinic demo seed`: a demo kiosk, demo staff and a provider with a week of free slots,
so that the kiosk form and the queue page have something to show on a first start."""
from __future__ import annotations

import os

from .credentials import kiosk_add, staff_add
from .database import service_connection
from .errors import CommandError

DEMO_KIOSK = "demo-kiosk"
DEMO_SCHEDULER = "demo-scheduler"
DEMO_ADMIN = "demo-admin"


def seed(settings) -> None:
    from services.referral.demo import seed_provider

    if os.environ.get("CLINIC_DEMO", "1") == "0":
        print("demo data disabled (CLINIC_DEMO=0)")
        return
    lines = []
    for label, create in (
        ("kiosk key (demo-kiosk)", lambda: kiosk_add(settings, DEMO_KIOSK)),
        ("scheduler token (demo-scheduler)", lambda: staff_add(settings, DEMO_SCHEDULER, "scheduler")),
        ("admin token (demo-admin)", lambda: staff_add(settings, DEMO_ADMIN, "admin")),
    ):
        try:
            lines.append(f"{label}: {create()}")
        except CommandError:
            lines.append(f"{label}: already created (keys are stored as hashes and cannot be shown again)")
    with service_connection(settings, "referral") as conn:
        provider = seed_provider(conn)
    lines.append(f"provider: {provider['name']} ({provider['free_slots']} free slots)")
    print("\n".join(lines))
