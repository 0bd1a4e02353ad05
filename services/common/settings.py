"""Settings read from the environment, once, when a process builds its app or worker."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .secret_sources import MissingSecret, read_secret

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "triage", "referral")
ADMIN_ROLE = "clinic_admin"  # the superuser the administration commands connect as

TOPIC_REPORTS = "clinic.symptom-reports.v1"
TOPIC_DECISIONS = "clinic.triage-decisions.v1"
TOPIC_REFERRAL_EVENTS = "clinic.referral-events.v1"
# What intake told each patient about their referral, and over which channel (issue 19;
# docs/patient-messages.md): intake publishes, referral shows it to schedulers.
TOPIC_PATIENT_MESSAGES = "clinic.patient-messages.v1"
TOPICS = (TOPIC_REPORTS, TOPIC_DECISIONS, TOPIC_REFERRAL_EVENTS, TOPIC_PATIENT_MESSAGES)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


# Kafka principals (SASL/SCRAM-SHA-512 users): one per service, one for the admin tools
# (`clinic kafka topics`, `clinic dlq ...`). Their ACLs: services/admin/topics.py.
KAFKA_ADMIN_PRINCIPAL = "clinic-admin"
KAFKA_PRINCIPALS = (*SERVICES, KAFKA_ADMIN_PRINCIPAL)


def kafka_password_setting(principal: str) -> str:
    """The setting that holds a Kafka principal's password: CLINIC_KAFKA_<PRINCIPAL>_PASSWORD
    (CLINIC_KAFKA_CLINIC_ADMIN_PASSWORD for clinic-admin)."""
    return f"CLINIC_KAFKA_{principal.upper().replace('-', '_')}_PASSWORD"


# What says where a database is: two services whose URLs agree on these share one database.
DATABASE_PLACE = ("host", "hostaddr", "port", "dbname")


@dataclass(frozen=True)
class Database:
    """One database and the services whose schemas it holds (all three on the local stack;
    one each when every service has its own server, docs/database-per-service.md)."""
    admin_url: str
    services: tuple[str, ...]


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
    secret_key: str | None
    ports: dict[str, int]
    role_urls: dict[str, str]
    # Each service's database as the admin (CLINIC_<SVC>_ADMIN_DATABASE_URL; by default
    # the admin URL pointed at that service's database): bootstrap, identity, audit.
    admin_urls: dict[str, str] = field(default_factory=dict)
    # host:port where a worker process serves /metrics (the APIs serve theirs themselves)
    metrics_bind: str | None = None
    # Proxies in front of the APIs whose X-Forwarded-For/-Proto/-Host are believed (Werkzeug's
    # ProxyFix, services/common/web.py): 0, no proxy, the headers are ignored; 1 behind the
    # TLS proxy (infra/proxy), which sets them and replaces what a client sent.
    trusted_proxy_hops: int = 0
    # The queue page's server-side sessions (services/common/sessions.py): ended after this
    # long without the signed-in person doing anything, and this long after sign-in at most.
    session_idle_minutes: float = 30.0
    session_max_hours: float = 12.0
    # Failed authentication (services/common/rate_limit.py): this many failures per client
    # address, and per credential, within one window, then 429 until the window ends.
    auth_failure_window_seconds: int = 300
    auth_failures_per_address: int = 10
    auth_failures_per_credential: int = 10
    # POST /v1/reports per kiosk and clock hour, then 429.
    kiosk_reports_per_hour: int = 120
    # Kafka SASL/SCRAM: this process's principal and password (CLINIC_KAFKA_USERNAME, by default
    # the service's own or clinic-admin; CLINIC_KAFKA_PASSWORD, by default that principal's
    # CLINIC_KAFKA_<PRINCIPAL>_PASSWORD). No password: PLAINTEXT, as a broker without SASL wants.
    kafka_username: str | None = None
    kafka_password: str | None = None
    # Every principal's password found (the `clinic` command and tests act as several).
    kafka_passwords: dict[str, str] = field(default_factory=dict)
    # retention.ms of the topics and of their .dlq twins (services/admin/topics.py).
    topic_retention_days: float = 7.0
    dlq_retention_days: float = 14.0
    # Retention of patient identity in the databases (services/common/retention.py, README
    # "Data protection"): a closed case's identifying fields are pseudonymised this many days
    # after it closed, by each worker's purge thread every `retention_purge_interval_seconds`,
    # `retention_batch_size` rows per transaction. `pseudonym_key` keys the MRN's HMAC
    # (CLINIC_PSEUDONYM_KEY; unset: derived from the service's secret key).
    retention_identity_days: float = 30.0
    retention_purge_interval_seconds: float = 3600.0
    retention_batch_size: int = 1000
    pseudonym_key: str | None = None
    # The referral service's bound on a decision's `within_days` (services/referral/events.py):
    # the largest booking window of triage's rule file, which it cannot read (14 today).
    referral_max_window_days: int = 14
    # Patient messages (intake's worker; docs/patient-messages.md). No SMTP host: email is
    # not sent (its messages are recorded `not_sent`); no gateway URL: likewise for SMS.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    # What a message says: appointment times in this zone (an IANA name, checked at load),
    # and how to reach the clinic.
    clinic_time_zone: str = "UTC"
    clinic_contact_phone: str | None = None
    clinic_name: str | None = None   # unset: "the clinic", in each message's language
    # Deliveries of one message refused for a temporary reason before it is `failed`.
    message_max_attempts: int = 5

    def role_url(self, role: str) -> str:
        """Database URL of a service's role (the `clinic` command acts for each service)."""
        return self.role_urls[role]

    def admin_url(self, service: str) -> str:
        """The service's database as the admin."""
        return self.admin_urls.get(service, self.admin_database_url)

    def databases(self) -> tuple[Database, ...]:
        """The distinct databases the services live in, in SERVICES order: one on the local
        stack, up to three when services are moved to their own servers."""
        places: dict[tuple, list[str]] = {}
        for service in SERVICES:
            places.setdefault(database_place(self.role_url(service)), []).append(service)
        return tuple(Database(self.admin_url(services[0]), tuple(services)) for services in places.values())

    def require_secret_key(self) -> str:
        """The key that signs this service's cookies; the APIs refuse to start without one."""
        if not self.secret_key:
            raise MissingSecret("CLINIC_SECRET_KEY")
        return self.secret_key


def db_password_setting(role: str) -> str:
    """The setting that holds a database role's password: CLINIC_<ROLE>_DB_PASSWORD."""
    return f"CLINIC_{role.upper()}_DB_PASSWORD"


def secret_key_setting(service: str) -> str:
    """Where `make run` keeps a service's own signing key under .state/secrets/."""
    return f"CLINIC_{service.upper()}_SECRET_KEY"


def _role_url(env, name: str, user: str, host: str, port: int, db: str, state_dir: Path) -> str:
    """CLINIC_<NAME>_DATABASE_URL as given, else a URL made from the host settings and the
    role's password (without one when none is set: the server then refuses the login)."""
    if url := env.get(f"CLINIC_{name.upper()}_DATABASE_URL"):
        return url
    password = read_secret(env, db_password_setting(name), state_dir)
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"postgresql://{auth}@{host}:{port}/{quote(db, safe='')}"


def database_place(url: str) -> tuple:
    """(host, hostaddr, port, dbname) of a connection URL or key=value string."""
    parts = conninfo_to_dict(url)
    parts.setdefault("dbname", parts.get("user"))  # as libpq: no database named, the user's
    return tuple(parts.get(key) for key in DATABASE_PLACE)


def _admin_url(env, service: str, admin_url: str, role_url: str) -> str:
    """CLINIC_<SVC>_ADMIN_DATABASE_URL as given; else the admin URL itself when the service's
    database is the admin URL's, or else the admin URL moved to the service's host, port and
    database (the same admin login on every server, unless given per service)."""
    if url := env.get(f"CLINIC_{service.upper()}_ADMIN_DATABASE_URL"):
        return url
    if database_place(admin_url) == database_place(role_url):
        return admin_url
    admin = {key: value for key, value in conninfo_to_dict(admin_url).items() if key not in DATABASE_PLACE}
    place = {key: value for key, value in conninfo_to_dict(role_url).items() if key in DATABASE_PLACE}
    return make_conninfo(**admin, **place)


def _hops(raw: str) -> int:
    if not raw.strip().isdigit():
        raise ValueError(f"CLINIC_TRUSTED_PROXY_HOPS={raw!r}: a number of proxies, 0 or more, is wanted")
    return int(raw)


def _yes_no(env, name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("yes", "no"):
        return raw == "yes"
    raise ValueError(f"{name}={raw!r}: yes or no is wanted")


def _int_in(env, name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name}={raw!r}: a whole number from {low} to {high} is wanted")
    return int(raw)


def _time_zone(env, name: str) -> str:
    raw = env.get(name, "").strip() or "UTC"
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name}={raw!r}: an IANA time zone such as Europe/Lisbon is wanted") from exc
    return raw


def _http_url(env, name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: an http:// or https:// URL is wanted")  # no value: it may hold a token
    return raw


def _smtp_from(env, host: str | None) -> str | None:
    sender = env.get("CLINIC_SMTP_FROM", "").strip() or None
    if host and not sender:
        raise ValueError("CLINIC_SMTP_FROM is not set: an address to send from is required with CLINIC_SMTP_HOST")
    if sender and "@" not in sender:
        raise ValueError(f"CLINIC_SMTP_FROM={sender!r}: an email address is wanted")
    return sender


def load(service: str | None = None, env: os._Environ | dict | None = None) -> Settings:
    env = os.environ if env is None else env
    service = service or env.get("CLINIC_SERVICE", "")
    state_dir = Path(env.get("CLINIC_STATE_DIR", REPO_ROOT / ".state"))
    host = env.get("CLINIC_PG_HOST", "127.0.0.1")
    port = int(env.get("CLINIC_PG_PORT", "55432"))
    db = env.get("CLINIC_DB_NAME", "clinic")
    role_urls = {role: _role_url(env, role, role, host, port, db, state_dir) for role in SERVICES}
    if service in role_urls and env.get("CLINIC_DATABASE_URL"):
        role_urls[service] = env["CLINIC_DATABASE_URL"]
    secret_key = read_secret(env, "CLINIC_SECRET_KEY", state_dir)
    if not secret_key and service in SERVICES:  # `make run` keeps one per service
        secret_key = read_secret(env, secret_key_setting(service), state_dir)
    kafka_passwords = {principal: password for principal in KAFKA_PRINCIPALS
                       if (password := read_secret(env, kafka_password_setting(principal), state_dir))}
    kafka_username = env.get("CLINIC_KAFKA_USERNAME") or (service if service in SERVICES else KAFKA_ADMIN_PRINCIPAL)
    smtp_host = env.get("CLINIC_SMTP_HOST", "").strip() or None
    admin_database_url = _role_url(env, "admin", ADMIN_ROLE, host, port, db, state_dir)
    return Settings(
        service=service,
        state_dir=state_dir,
        pg_host=host,
        pg_port=port,
        db_name=db,
        database_url=role_urls.get(service, env.get("CLINIC_DATABASE_URL", "")),
        admin_database_url=admin_database_url,
        kafka_bootstrap=env.get("CLINIC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        secret_key=secret_key,
        ports={
            "intake": int(env.get("CLINIC_INTAKE_PORT", "8001")),
            "triage": int(env.get("CLINIC_TRIAGE_PORT", "8002")),
            "referral": int(env.get("CLINIC_REFERRAL_PORT", "8003")),
        },
        role_urls=role_urls,
        admin_urls={svc: _admin_url(env, svc, admin_database_url, url) for svc, url in role_urls.items()},
        metrics_bind=env.get("CLINIC_METRICS_BIND") or None,
        trusted_proxy_hops=_hops(env.get("CLINIC_TRUSTED_PROXY_HOPS", "0")),
        session_idle_minutes=float(env.get("CLINIC_SESSION_IDLE_MINUTES", "30")),
        session_max_hours=float(env.get("CLINIC_SESSION_MAX_HOURS", "12")),
        auth_failure_window_seconds=int(env.get("CLINIC_AUTH_FAILURE_WINDOW_SECONDS", "300")),
        auth_failures_per_address=int(env.get("CLINIC_AUTH_FAILURES_PER_ADDRESS", "10")),
        auth_failures_per_credential=int(env.get("CLINIC_AUTH_FAILURES_PER_CREDENTIAL", "10")),
        kiosk_reports_per_hour=int(env.get("CLINIC_KIOSK_REPORTS_PER_HOUR", "120")),
        kafka_username=kafka_username,
        kafka_password=read_secret(env, "CLINIC_KAFKA_PASSWORD", state_dir) or kafka_passwords.get(kafka_username),
        kafka_passwords=kafka_passwords,
        topic_retention_days=float(env.get("CLINIC_TOPIC_RETENTION_DAYS", "7")),
        dlq_retention_days=float(env.get("CLINIC_DLQ_RETENTION_DAYS", "14")),
        retention_identity_days=float(env.get("CLINIC_RETENTION_IDENTITY_DAYS", "30")),
        retention_purge_interval_seconds=float(env.get("CLINIC_RETENTION_PURGE_INTERVAL_SECONDS", "3600")),
        retention_batch_size=int(env.get("CLINIC_RETENTION_BATCH_SIZE", "1000")),
        pseudonym_key=read_secret(env, "CLINIC_PSEUDONYM_KEY", state_dir),
        referral_max_window_days=int(env.get("CLINIC_REFERRAL_MAX_WINDOW_DAYS", "14")),
        smtp_host=smtp_host,
        smtp_port=_int_in(env, "CLINIC_SMTP_PORT", 25, 1, 65535),
        smtp_from=_smtp_from(env, smtp_host),
        smtp_username=env.get("CLINIC_SMTP_USERNAME", "").strip() or None,
        smtp_password=read_secret(env, "CLINIC_SMTP_PASSWORD", state_dir),
        smtp_starttls=_yes_no(env, "CLINIC_SMTP_STARTTLS", False),
        sms_gateway_url=_http_url(env, "CLINIC_SMS_GATEWAY_URL"),
        sms_gateway_token=read_secret(env, "CLINIC_SMS_GATEWAY_TOKEN", state_dir),
        clinic_time_zone=_time_zone(env, "CLINIC_TIME_ZONE"),
        clinic_contact_phone=env.get("CLINIC_CONTACT_PHONE", "").strip() or None,
        clinic_name=env.get("CLINIC_NAME", "").strip() or None,
        message_max_attempts=_int_in(env, "CLINIC_MESSAGE_MAX_ATTEMPTS", 5, 1, 100),
    )
