"""Prometheus metrics. Labels never carry patient data: routes are URL rules, not paths."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
OUTBOX_UNSENT = Gauge("clinic_outbox_unsent", "Outbox rows not yet published", ["schema"])
