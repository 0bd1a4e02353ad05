"""CPU per consumed event of envelope.decode + the service's parse_* (issue 15), for each
event type the three workers consume: us/event (process time; median, min and max of REPS
runs of 3,000 events) and Python calls per event (deterministic: comparable at any load).

    .venv/bin/python -m tests.bench.bench_event_parse [name filter...]
    .venv/bin/python -m tests.bench.bench_event_parse profile "triage report"

No Kafka, no database: the events are built with the services' own builders, as in
bench_worker_drain. Against another checkout: REPO=/path/to/it (its services are imported).
"""
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid

if os.environ.get("REPO"):
    sys.path.insert(0, os.environ["REPO"])
from services.common import envelope  # noqa: E402
from services.intake import events as intake_events  # noqa: E402
from services.referral import events as referral_events  # noqa: E402
from services.referral.domain import DEFAULT_WINDOWS  # noqa: E402
from services.triage import events as triage_events  # noqa: E402
from tests.bench.bench_worker_drain import booked_snapshot, decision, triage_backlog  # noqa: E402

N = 3000
LEVELS = ("urgent", "specialist", "urgent", "specialist", "self_care")


def _messages(count: int) -> list[bytes]:
    return [envelope.encode(intake_events.patient_message_event(
        message_id=str(uuid.uuid4()), referral_id=str(uuid.uuid4()), report_id=str(uuid.uuid4()), sequence=i,
        change="booked", channel="email", status="sent", detail=None, attempts=1, revision=1,
        at="2026-12-01T05:00:00+00:00", callback_phone=None)) for i in range(count)]


def cases() -> dict:
    reports = [value for _topic, _key, value in triage_backlog(None, N)]
    decisions = [envelope.encode(decision(str(uuid.uuid4()), LEVELS[i % 5], f"MRN-{uuid.uuid4().hex[:12]}"))
                 for i in range(N)]
    snapshots = [envelope.encode(booked_snapshot(str(uuid.uuid4()))) for _ in range(N)]
    return {
        "triage report": (reports, triage_events.parse_report_event),
        "referral decision": (decisions, lambda event: referral_events.parse_decision(event, DEFAULT_WINDOWS)),
        "referral patient_message": (_messages(N), referral_events.parse_patient_message),
        "intake decision": (decisions, intake_events.parse_decision),
        "intake referral_event": (snapshots, intake_events.parse_referral_event),
    }


def run(values: list[bytes], parse) -> None:
    for value in values:
        parse(envelope.decode(value))


def calls_per_event(values: list[bytes], parse) -> float:
    profile = cProfile.Profile()
    profile.runcall(run, values, parse)
    return pstats.Stats(profile).total_calls / len(values)


def main(argv: list[str]) -> None:
    every = cases()
    if argv[:1] == ["profile"]:
        values, parse = every[argv[1]]
        cProfile.runctx("run(values, parse)", globals(), {"values": values, "parse": parse}, "/tmp/bench_event_parse.prof")
        pstats.Stats("/tmp/bench_event_parse.prof").sort_stats("tottime").print_stats(30)
        return
    reps = int(os.environ.get("REPS", 15))
    for name, (values, parse) in every.items():
        if argv and not any(word in name for word in argv):
            continue
        run(values, parse)  # warm
        times = []
        for _ in range(reps):
            start = time.process_time()
            run(values, parse)
            times.append((time.process_time() - start) / len(values) * 1e6)
        print(f"{name:26s} calls/event {calls_per_event(values[:300], parse):6.1f}  "
              f"median {statistics.median(times):6.1f} us/event  min {min(times):6.1f}  max {max(times):6.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
