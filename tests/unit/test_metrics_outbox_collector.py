"""The outbox figures a scrape reads from the database, and what it shows when it cannot."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from services.common.metrics import OutboxCollector, exposition


def scraped(*collectors) -> dict[str, float]:
    """The samples labelled with the test's own schema (the process's counters may carry others)."""
    text = exposition(*collectors).decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if s.labels.get("schema") == "unit_test_schema"}


def test_backlog_and_age_of_the_oldest_unsent_event():
    found = scraped(OutboxCollector("unit_test_schema", lambda: (3, 12.5)))
    assert found == {"clinic_database_up": 1.0, "clinic_outbox_unsent": 3.0,
                     "clinic_outbox_oldest_unsent_seconds": 12.5}


def test_a_database_that_does_not_answer_is_reported_not_raised():
    def down():
        raise OSError("connection refused")

    found = scraped(OutboxCollector("unit_test_schema", down))
    assert found == {"clinic_database_up": 0.0}


def test_the_process_counters_come_in_the_same_answer():
    text = exposition(OutboxCollector("unit_test_schema", lambda: (0, 0.0))).decode()
    assert text.index("clinic_http_requests_total") < text.index("clinic_outbox_unsent")
