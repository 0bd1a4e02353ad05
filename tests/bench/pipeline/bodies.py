"""The reports the benchmark sends: urgent, specialist and self care mixed 3:3:4 (as the
chaos suite's load), each for a new patient, serialised before any clock starts."""
from __future__ import annotations

import json
import uuid

from tests.e2e.flow_helpers import SELF_CARE, SPECIALIST, URGENT, report_body

MIX = (URGENT, SPECIALIST, URGENT, SPECIALIST, URGENT, SPECIALIST, SELF_CARE, SELF_CARE, SELF_CARE, SELF_CARE)


def report_bytes(count: int) -> list[bytes]:
    return [json.dumps(report_body(mrn=f"BENCH-{uuid.uuid4().hex[:12]}", **MIX[i % len(MIX)])).encode()
            for i in range(count)]
