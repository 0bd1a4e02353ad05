"""Settings read from the environment, once, when a process builds its app or worker."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "triage", "referral")

TOPIC_REPORTS = "clinic.symptom-reports.v1"
TOPIC_DECISIONS = "clinic.triage-decisions.v1"
TOPIC_REFERRAL_EVENTS = "clinic.referral-events.v1"
TOPICS = (TOPIC_REPORTS, TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class Settings:
    service: str
    state_dir: Path
    pg_host: str
    pg_port: int
    db_name: str
    database_url: str
    admin_database_url: str
    kafka_bootstrap: str
    secret_key: str
    ports: dict[str, int]
    role_urls: dict[str, str]
    # host:port where a worker process serves /metrics (the APIs serve theirs themselves)
    metrics_bind: str | None = None

    def role_url(self, role: str) -> str:
        """Database URL of a service's role (the `clinic` command acts for each service)."""
        return self.role_urls[role]


def _local_url(user: str, password: str, host: str, port: int, db: str) -> str:
    return f"postgresql://{user}:{password}@{host}:{port}/{db}"


def load(service: str | None = None, env: os._Environ | dict | None = None) -> Settings:
    env = os.environ if env is None else env
    service = service or env.get("CLINIC_SERVICE", "")
    state_dir = Path(env.get("CLINIC_STATE_DIR", REPO_ROOT / ".state"))
    host = env.get("CLINIC_PG_HOST", "127.0.0.1")
    port = int(env.get("CLINIC_PG_PORT", "55432"))
    db = env.get("CLINIC_DB_NAME", "clinic")
    role_urls = {
        role: env.get(f"CLINIC_{role.upper()}_DATABASE_URL") or _local_url(role, role, host, port, db)
        for role in SERVICES
    }
    if service in role_urls and env.get("CLINIC_DATABASE_URL"):
        role_urls[service] = env["CLINIC_DATABASE_URL"]
    return Settings(
        service=service,
        state_dir=state_dir,
        pg_host=host,
        pg_port=port,
        db_name=db,
        database_url=role_urls.get(service, env.get("CLINIC_DATABASE_URL", "")),
        admin_database_url=env.get(
            "CLINIC_ADMIN_DATABASE_URL", _local_url("clinic_admin", "clinic_admin", host, port, db)
        ),
        kafka_bootstrap=env.get("CLINIC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        # Local default only; compose and real deployments set CLINIC_SECRET_KEY.
        secret_key=env.get("CLINIC_SECRET_KEY", "local-development-secret-change-me"),
        ports={
            "intake": int(env.get("CLINIC_INTAKE_PORT", "8001")),
            "triage": int(env.get("CLINIC_TRIAGE_PORT", "8002")),
            "referral": int(env.get("CLINIC_REFERRAL_PORT", "8003")),
        },
        role_urls=role_urls,
        metrics_bind=env.get("CLINIC_METRICS_BIND") or None,
    )
