"""What a Prometheus scraping the stack started as `make run` starts it sees: each API's
/metrics adds up its gunicorn workers and reads the outbox backlog; each worker process
serves its own /metrics with the events it consumed."""
from __future__ import annotations

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .flow_helpers import URGENT, report_body, submit, wait_for_report

pytestmark = pytest.mark.e2e


def samples(url: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize("svc", ["intake", "triage", "referral"])
def test_api_metrics_count_the_requests_of_every_gunicorn_worker(live_stack, svc):
    url = live_stack.base_url[svc]
    healthz = dict(service=svc, endpoint="/healthz", method="GET", status="200")
    before = value(samples(f"{url}/metrics"), "clinic_http_requests_total", **healthz)
    for _ in range(40):
        with requests.Session() as fresh:  # a new connection each time: the workers take turns
            assert fresh.get(f"{url}/healthz", timeout=5).status_code == 200
    after = value(samples(f"{url}/metrics"), "clinic_http_requests_total", **healthz)
    # One process's own registry would show only its share of the 40.
    assert after - before == 40


def test_api_metrics_show_the_outbox_backlog(live_stack):
    found = samples(f"{live_stack.base_url['intake']}/metrics")
    assert value(found, "clinic_database_up", schema="intake") == 1.0
    assert ("clinic_outbox_unsent", frozenset({("schema", "intake")})) in found
    assert value(found, "clinic_outbox_oldest_unsent_seconds", schema="intake") >= 0.0


def test_worker_metrics_count_the_events_each_worker_applied(live_stack):
    before = {svc: samples(url) for svc, url in live_stack.worker_metrics_url.items()}
    key = live_stack.kiosk_key()
    intake = live_stack.base_url["intake"]
    report_id = submit(intake, key, report_body(**URGENT)).json()["report_id"]
    wait_for_report(intake, key, report_id)
    after = {svc: samples(url) for svc, url in live_stack.worker_metrics_url.items()}

    def applied(svc: str, topic: str) -> float:
        return (value(after[svc], "clinic_events_consumed_total", service=svc, topic=topic, outcome="applied")
                - value(before[svc], "clinic_events_consumed_total", service=svc, topic=topic, outcome="applied"))

    # The report was decided, referred, and its status followed both events.
    assert applied("triage", "clinic.symptom-reports.v1") >= 1
    assert applied("referral", "clinic.triage-decisions.v1") >= 1
    assert applied("intake", "clinic.triage-decisions.v1") >= 1
    assert applied("intake", "clinic.referral-events.v1") >= 1
    published = (value(after["intake"], "clinic_events_published_total", schema="intake")
                 - value(before["intake"], "clinic_events_published_total", schema="intake"))
    assert published >= 1


def test_worker_metrics_show_the_lag_of_the_partitions_each_worker_owns(live_stack):
    key = live_stack.kiosk_key()
    intake = live_stack.base_url["intake"]
    report_id = submit(intake, key, report_body(**URGENT)).json()["report_id"]
    wait_for_report(intake, key, report_id)

    def triage_lag() -> dict[str, float]:
        found = samples(live_stack.worker_metrics_url["triage"])
        return {dict(labels)["partition"]: v for (name, labels), v in found.items()
                if name == "clinic_consumer_lag" and ("topic", "clinic.symptom-reports.v1") in labels}

    lag = triage_lag()
    # One worker owns the topic's partitions; those it has handled messages of are shown.
    assert lag and set(lag) <= {str(p) for p in range(6)}, lag
    deadline = time.monotonic() + 60
    while sum(lag.values()) != 0:  # every report is final: nothing is left to read
        assert time.monotonic() < deadline, f"lag still {lag}"
        time.sleep(0.5)
        lag = triage_lag()
