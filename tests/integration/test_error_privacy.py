"""A database error's detail quotes row values (a duplicate MRN, say); what the consumer
logs and puts in dead-letter headers must not."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from services.common.inbox import describe_error

pytestmark = pytest.mark.integration


def test_a_unique_violation_is_described_without_its_values(settings_for):
    settings = settings_for("intake")
    secret = f"MRN-{uuid.uuid4().hex}"
    table = f"intake.privacy_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.database_url) as conn:  # rolled back on exit: nothing stays
        conn.execute(f"CREATE TABLE {table} (mrn text CONSTRAINT patients_mrn_key UNIQUE)")
        conn.execute(f"INSERT INTO {table} VALUES (%s)", (secret,))
        with pytest.raises(psycopg.errors.UniqueViolation) as caught:
            conn.execute(f"INSERT INTO {table} VALUES (%s)", (secret,))
        conn.rollback()
    assert secret in str(caught.value), "the raw error does quote the value"
    described = describe_error(caught.value)
    assert secret not in described
    assert described.startswith("UniqueViolation (SQLSTATE 23505, constraint patients_mrn_key")
