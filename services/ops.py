"""Operations behind `clinic db bootstrap` and `clinic kafka topics` (compose's one-shots)."""
from __future__ import annotations

import psycopg

from services.common.db import apply_migrations, connect
from services.common.settings import SERVICES, TOPICS, Settings, dlq_topic

TOPIC_PARTITIONS = 6


def role_passwords(settings: Settings) -> dict[str, str]:
    """Each role's password as its URL gives it (compose sets them; locally, the role name)."""
    return {role: psycopg.conninfo.conninfo_to_dict(settings.role_url(role)).get("password") or role
            for role in SERVICES}


def bootstrap(settings: Settings) -> None:
    """Roles, schemas and grants as the admin, then each service's migrations as its own role."""
    from infra.postgres import bootstrap_database

    maintenance = psycopg.conninfo.make_conninfo(settings.admin_database_url, dbname="postgres")
    bootstrap_database(maintenance, settings.db_name, role_passwords(settings))
    for service in SERVICES:
        with connect(settings.role_url(service)) as conn:
            apply_migrations(conn, service, f"services.{service}")
    print("database ready: roles, schemas and migrations applied")


def create_topics(settings: Settings) -> None:
    from infra.kafka.runner import ensure_topics

    names = [t for topic in TOPICS for t in (topic, dlq_topic(topic))]
    ensure_topics(settings.kafka_bootstrap, names, TOPIC_PARTITIONS)
    print(f"topics ready: {', '.join(names)}")
