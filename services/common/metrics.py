"""Prometheus metrics. Labels never carry patient data: routes are URL rules, not paths.

Where the figures come from:
- An API runs as several gunicorn worker processes. With PROMETHEUS_MULTIPROC_DIR set
  (services/common/gunicorn_conf.py sets it) each process writes its counters to files there and
  the one answering `/metrics` adds them all up; without it (a test server) the process's
  own registry is shown.
- A worker process (`clinic worker SVC`) is one process: it serves its own registry on
  CLINIC_METRICS_BIND (host:port) when that is set.
- The outbox backlog is read from the service's schema at scrape time, so that it is
  right whichever process answers and even while the worker is down (when it matters).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "clinic_http_requests_total", "HTTP requests answered", ["service", "endpoint", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "clinic_http_request_seconds", "HTTP request latency", ["service", "endpoint", "method"]
)
EVENTS_CONSUMED = Counter(
    "clinic_events_consumed_total", "Events applied, skipped as duplicates or dead-lettered",
    ["service", "topic", "outcome"],
)
EVENTS_PUBLISHED = Counter("clinic_events_published_total", "Outbox rows published to Kafka", ["schema"])
CONSUMER_LAG = Gauge(
    "clinic_consumer_lag", "Messages in a partition after the one this worker handles next (partitions it owns)",
    ["service", "topic", "partition"],
)

# Patient messages (intake's worker, docs/patient-messages.md): the states they reach by
# channel (sent, failed, uncertain, not_sent, and `retry` for a temporary refusal), and how
# many wait to be delivered, as the sender last counted them.
PATIENT_MESSAGES = Counter(
    "clinic_patient_messages_total", "Patient messages by channel and the state they reached", ["channel", "outcome"],
)
PATIENT_MESSAGES_QUEUED = Gauge("clinic_patient_messages_queued", "Patient messages queued for delivery")


# (unsent rows, age in seconds of the oldest unsent row or 0); raises when the database is down.
OutboxReader = Callable[[], tuple[int, float]]


class OutboxCollector(Collector):
    """The outbox backlog of one schema, read when scraped. A growing oldest-unsent age is
    the signal that events are not reaching Kafka (broker down, relay stuck)."""

    def __init__(self, schema: str, read: OutboxReader):
        self.schema = schema
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("clinic_database_up", "1 if the service's database answered the scrape",
                               labels=["schema"])
        try:
            unsent, oldest_s = self.read()
        except Exception:  # the database is down: say so rather than fail the whole scrape
            up.add_metric([self.schema], 0)
            yield up
            return
        up.add_metric([self.schema], 1)
        yield up
        backlog = GaugeMetricFamily("clinic_outbox_unsent", "Outbox rows not yet published to Kafka",
                                    labels=["schema"])
        backlog.add_metric([self.schema], unsent)
        yield backlog
        age = GaugeMetricFamily("clinic_outbox_oldest_unsent_seconds",
                                "Age of the oldest outbox row not yet published (0 when none)", labels=["schema"])
        age.add_metric([self.schema], oldest_s)
        yield age


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(*collectors: Collector) -> bytes:
    """The text a scrape gets: this process's metrics (or every process's, in multiprocess
    mode) followed by the given collectors' figures."""
    extra = CollectorRegistry()  # no auto-describe: that would read the database twice
    for collector in collectors:
        extra.register(collector)
    if multiprocess_dir():
        own = CollectorRegistry()
        multiprocess.MultiProcessCollector(own)
    else:
        own = REGISTRY
    return generate_latest(own) + generate_latest(extra)
