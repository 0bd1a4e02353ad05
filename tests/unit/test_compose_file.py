"""docker-compose.yml, infra/Dockerfile and .dockerignore agree with the code.

Pure file parsing (PyYAML, no container engine): the compose stack must start
the processes docs/conventions.md describes, with the settings the code reads,
in the right order. `docker compose up` is the ops teams' way to run the stack
(contract.md, "Running it"), and nothing else exercises this file.

The last test asks the `docker-compose` binary itself to validate the file; it
exists only where that binary is installed (CI installs it).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# PostgreSQL's and Kafka's ports on the host's loopback, for ops and the compose tests:
# `-f docker-compose.yml -f infra/containers/compose.host-access.yml` (docs/compose.md).
HOST_ACCESS_FILE = ROOT / "infra" / "containers" / "compose.host-access.yml"
COMPOSE_DOC = ROOT / "docs" / "compose.md"
DOCKERFILE = ROOT / "infra" / "Dockerfile"
CONVENTIONS = ROOT / "docs" / "conventions.md"

API_PORTS = {"intake": 8001, "triage": 8002, "referral": 8003}
SERVICES = tuple(API_PORTS)
WORKERS = {f"{svc}-worker": svc for svc in SERVICES}
ONE_SHOTS = ("migrate", "topics")
OUR_CONTAINERS = (*SERVICES, *WORKERS, *ONE_SHOTS)

# Host-side secrets that compose interpolates (documented at the top of
# docker-compose.yml), each required: `${NAME:?message naming NAME}`, no default.
# The names are those the code reads (services/common/settings.py: the roles'
# CLINIC_<ROLE>_DB_PASSWORD, each service's CLINIC_<SVC>_SECRET_KEY).
DB_PASSWORDS = {role: f"CLINIC_{role.upper()}_DB_PASSWORD" for role in ("admin", *SERVICES)}
SECRET_KEYS = {svc: f"CLINIC_{svc.upper()}_SECRET_KEY" for svc in SERVICES}
# Kafka principals' passwords: the settings' CLINIC_KAFKA_<PRINCIPAL>_PASSWORD, and the
# broker's own (infra/kafka/runner.py's BROKER_PASSWORD_SETTING).
KAFKA_PRINCIPALS = ("clinic-broker", "clinic-admin", *SERVICES)
KAFKA_PASSWORDS = {p: "CLINIC_KAFKA_BROKER_PASSWORD" if p == "clinic-broker"
                   else f"CLINIC_KAFKA_{p.upper().replace('-', '_')}_PASSWORD" for p in KAFKA_PRINCIPALS}
# The proxy's certificate and key: paths of PEM files, given to it as compose secrets.
TLS_FILES = {"tls_cert": "CLINIC_TLS_CERT_FILE", "tls_key": "CLINIC_TLS_KEY_FILE"}
COMPOSE_SECRETS = {*DB_PASSWORDS.values(), *SECRET_KEYS.values(), *KAFKA_PASSWORDS.values(), *TLS_FILES.values()}
# Host-side choices of the compose file alone, documented in its header too: the
# infrastructure images (public ones by default, infra/containers/ builds local ones) and
# the three Kafka brokers' host ports (the first: the name `make run` reads, infra/stack.py).
BROKERS = ("kafka", "kafka-2", "kafka-3")
BROKER_PORT_SETTINGS = {"kafka": "CLINIC_KAFKA_PORT", "kafka-2": "CLINIC_KAFKA_2_PORT", "kafka-3": "CLINIC_KAFKA_3_PORT"}
BROKER_HOST_PORTS = {"kafka": "9092", "kafka-2": "9094", "kafka-3": "9096"}  # make run's layout
COMPOSE_HOST_SETTINGS = {"CLINIC_POSTGRES_IMAGE", "CLINIC_KAFKA_IMAGE", "CLINIC_PROXY_IMAGE", *BROKER_PORT_SETTINGS.values()}
# The patient messages' settings (services/common/settings.py), passed to the intake worker by
# name for ops to set; each optional (empty is unset: the service's own default applies).
# Two of them are secrets: passed the same way, never with a default of their own.
PATIENT_MESSAGE_SETTINGS = (
    "CLINIC_SMTP_HOST", "CLINIC_SMTP_PORT", "CLINIC_SMTP_FROM", "CLINIC_SMTP_USERNAME", "CLINIC_SMTP_PASSWORD",
    "CLINIC_SMTP_STARTTLS", "CLINIC_SMS_GATEWAY_URL", "CLINIC_SMS_GATEWAY_TOKEN", "CLINIC_TIME_ZONE",
    "CLINIC_CONTACT_PHONE", "CLINIC_NAME", "CLINIC_MESSAGE_MAX_ATTEMPTS",
)
OPTIONAL_SECRETS = {"CLINIC_SMTP_PASSWORD", "CLINIC_SMS_GATEWAY_TOKEN"}

_VAR = re.compile(
    r"\$(?:\$|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


# --------------------------------------------------------------------------- helpers


def interpolate(value):
    """The value compose would use with an empty host environment."""
    if not isinstance(value, str):
        return value

    def sub(match):
        if match.group(0) == "$$":
            return "$"
        if match.group("op") in ("-", ":-"):
            return match.group("arg")
        return ""

    return _VAR.sub(sub, value)


def variables_in(value) -> set[str]:
    """Names of the host variables a compose value interpolates."""
    if isinstance(value, dict):
        return set().union(*(variables_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(variables_in(v) for v in value))
    if not isinstance(value, str):
        return set()
    return {m.group("braced") or m.group("bare") for m in _VAR.finditer(value) if m.group(0) != "$$"}


def environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", "NAME"]
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def command(service: dict) -> list[str]:
    cmd = service.get("command")
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd or [])


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short syntax: no condition at all
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def published(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) with defaults interpolated."""
    out = []
    for port in service.get("ports") or []:
        parts = interpolate(str(port)).split(":")
        ip = parts[0] if len(parts) == 3 else ""
        out.append((ip, parts[-2], parts[-1]))
    return out


def section(markdown: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}.*?$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"docs/conventions.md has no '## {title}' section"
    return match.group(1)


def documented_settings() -> set[str]:
    """CLINIC_* names of the settings table plus those of the Processes section;
    a `CLINIC_<SVC>_...` (or <ROLE>) pattern stands for the three services, and a `_SUFFIX`
    after a name for that name with its last part replaced (`CLINIC_SMTP_HOST` / `_PORT`)."""
    text = CONVENTIONS.read_text()
    names = set()
    for line in section(text, "Environment settings").splitlines():
        if line.startswith("|"):
            full = []
            for token in re.findall(r"`(_?[A-Za-z0-9_<>]+)`", line.split("|")[1]):
                if token.startswith("CLINIC_"):
                    full.append(token)
                elif token.startswith("_") and full:
                    full.append(full[-1].rsplit("_", 1)[0] + token)
            for name in full:
                names |= {re.sub(r"<(svc|SVC|role|ROLE)>", svc.upper(), name) for svc in SERVICES}
                names.add(re.sub(r"<(role|ROLE)>", "ADMIN", name))  # the table's ROLE includes ADMIN
    names |= set(re.findall(r"CLINIC_[A-Z0-9_]+", section(text, "Processes")))
    assert {"CLINIC_DATABASE_URL", "CLINIC_KAFKA_BOOTSTRAP"} <= names, names
    return names


def documented_topics() -> list[str]:
    return re.findall(r"`(clinic\.[a-z0-9.-]+)`", section(CONVENTIONS.read_text(), "Kafka topics"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined, comments dropped."""
    logical, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    return [(word.upper(), rest.strip()) for word, _, rest in (line.partition(" ") for line in logical)]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def host_access() -> dict:
    return yaml.safe_load(HOST_ACCESS_FILE.read_text())


# --------------------------------------------------------------------------- processes


@pytest.mark.parametrize("svc", SERVICES)
def test_api_runs_gunicorn_on_its_port(services, svc):
    api = services[svc]
    port = API_PORTS[svc]
    assert command(api) == [
        "gunicorn",
        "--config",
        "python:services.common.gunicorn_conf",
        f"services.{svc}.app:create_app()",
    ]
    env = environment(api)
    assert env["CLINIC_SERVICE"] == svc
    assert env["CLINIC_BIND"] == f"0.0.0.0:{port}"
    # Behind the proxy alone: no port of its own on the host, one forwarding hop believed.
    assert not published(api), f"{svc} publishes a port; the proxy is the only way in"
    assert env["CLINIC_TRUSTED_PROXY_HOPS"] == "1"
    assert api["networks"] == ["backend"]


@pytest.mark.parametrize("svc", SERVICES)
def test_api_command_names_modules_that_exist(services, svc):
    """The gunicorn app path and config module are real files of the project."""
    app_path, _, factory = command(services[svc])[-1].partition(":")
    module_file = ROOT / Path(*app_path.split(".")).with_suffix(".py")
    assert module_file.is_file(), f"gunicorn would import {app_path}, but {module_file} does not exist"
    tree = ast.parse(module_file.read_text())
    top_level = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert factory.removesuffix("()") in top_level, f"{module_file} defines no {factory}"
    config = command(services[svc])[2].removeprefix("python:")
    assert (ROOT / Path(*config.split("."))).with_suffix(".py").is_file(), f"no module {config}"


@pytest.mark.parametrize(("name", "svc"), sorted(WORKERS.items()))
def test_worker_runs_clinic_worker(services, name, svc):
    assert command(services[name]) == ["clinic", "worker", svc]
    assert environment(services[name])["CLINIC_SERVICE"] == svc
    # /metrics for a Prometheus on the compose network; nothing published on the host.
    assert environment(services[name])["CLINIC_METRICS_BIND"] == "0.0.0.0:9100"
    assert not services[name].get("ports"), "a worker publishes no port"


def test_clinic_console_script_accepts_every_command_compose_runs(services):
    """`clinic ...` in compose (and in the migrate module) parses with the real CLI."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["clinic"] == "services.admin.cli:main"
    from services.admin.cli import build_parser

    argvs = [command(svc)[1:] for svc in services.values() if command(svc)[:1] == ["clinic"]]
    argvs += [step.split()[1:] for step in migrate_steps(services["migrate"])]
    assert ["kafka", "topics"] in argvs and ["worker", "intake"] in argvs
    for argv in argvs:
        build_parser().parse_args(argv)  # SystemExit(2) on an unknown command


def migrate_steps(migrate: dict) -> list[str]:
    shell, flag, script = command(migrate)
    assert (shell, flag) == ("sh", "-c")
    return [step.strip() for step in script.split("&&")]


def required(value, name: str) -> bool:
    """value is `${name:?message}` and the message names the variable: compose refuses to
    start without it, saying which."""
    match = re.fullmatch(r"\$\{(?P<name>\w+):\?(?P<message>[^}]+)\}", str(value))
    return bool(match) and match["name"] == name and name in match["message"]


def test_migrate_bootstraps_then_seeds_demo_data(services):
    migrate = services["migrate"]
    assert migrate_steps(migrate) == ["clinic db bootstrap", "clinic demo seed"]
    env = environment(migrate)
    # The admin URL is made by the code from the host settings and the admin password.
    from services.common.settings import load

    settings = load(env={key: interpolate(value) if value else "" for key, value in env.items()}
                    | {"CLINIC_ADMIN_DB_PASSWORD": "pw", "CLINIC_STATE_DIR": "/nonexistent"})
    admin = urlsplit(settings.admin_database_url)
    assert (admin.scheme, admin.username, admin.password, admin.hostname, admin.port, admin.path) == (
        "postgresql", "clinic_admin", "pw", "postgres", 5432, "/clinic",
    )
    assert required(env["CLINIC_ADMIN_DB_PASSWORD"], "CLINIC_ADMIN_DB_PASSWORD")


def test_topics_one_shot_creates_the_topics(services):
    assert command(services["topics"]) == ["clinic", "kafka", "topics"]


def test_only_migrate_holds_other_roles_credentials(services):
    """Each service sees its own role's password only; the superuser's and every role's
    password (what `clinic db bootstrap` and the `clinic` command need) live in the
    one-shot alone (and the superuser's in postgres, which it initialises)."""
    database_secrets = set(DB_PASSWORDS.values())
    for name, svc in services.items():
        env = environment(svc)
        held = {key for key in env if key.removesuffix("_FILE") in database_secrets}
        assert not {key for key in env if "DATABASE_URL" in key}, f"{name}: URLs carry no password here"
        if name == "migrate":
            assert held == database_secrets
        elif name in (*SERVICES, *WORKERS):
            assert held == {DB_PASSWORDS[WORKERS.get(name, name)]}, name
        else:
            assert not held, name


def test_our_containers_share_one_image_built_from_infra_dockerfile(services):
    for name in OUR_CONTAINERS:
        svc = services[name]
        assert svc["build"] == {"context": ".", "dockerfile": "infra/Dockerfile"}, name
        assert svc["image"] == services["migrate"]["image"], name
        assert svc.get("init") is True, f"{name}: PID 1 must forward signals and reap children"


# --------------------------------------------------------------------------- settings


def test_every_clinic_setting_is_documented(services):
    known = documented_settings()
    used = {
        (name, key)
        for name, svc in services.items()
        if name in OUR_CONTAINERS  # the Kafka container's are its entrypoint's (test_kafka_sasl_and_acls)
        for key in environment(svc)
        if key.startswith("CLINIC_")
    }
    undocumented = sorted({key for _, key in used if key not in known})
    assert not undocumented, f"add to the settings table of docs/conventions.md: {undocumented}"
    dockerfile_env = {
        key
        for instruction, args in dockerfile_instructions()
        if instruction == "ENV"
        for key in re.findall(r"(?:^|\s)(CLINIC_[A-Z0-9_]+)=", args)
    }
    assert dockerfile_env - known == set()


def test_interpolated_host_variables_are_settings_or_documented_secrets(compose):
    used = {v for v in variables_in(compose["services"]) if v.startswith("CLINIC_")}
    assert used - documented_settings() - COMPOSE_SECRETS - COMPOSE_HOST_SETTINGS == set()
    header = COMPOSE_FILE.read_text().split("\nx-", 1)[0]
    assert {v for v in used if v not in header} == set(), "document host variables in the file header"


@pytest.mark.parametrize("name", OUR_CONTAINERS)
def test_common_settings_point_inside_the_compose_network(services, name):
    env = environment(services[name])
    assert env["CLINIC_KAFKA_BOOTSTRAP"] == "kafka:9092,kafka-2:9092,kafka-3:9092", "every broker"
    assert (env["CLINIC_PG_HOST"], str(env["CLINIC_PG_PORT"]), env["CLINIC_DB_NAME"]) == (
        "postgres", "5432", "clinic",
    )
    assert env["CLINIC_DEMO"] == "${CLINIC_DEMO:-0}", "no demo data unless the host asks for it"
    assert interpolate(env["CLINIC_DEMO"]) == "0"


@pytest.mark.parametrize("name", [*SERVICES, *WORKERS])
def test_each_service_connects_as_its_own_role(services, name):
    """The URL the code makes from the compose settings: the service's own role, on the
    compose network, with its role's password, which has no default."""
    from services.common.settings import load

    svc = WORKERS.get(name, name)
    env = environment(services[name])
    setting = DB_PASSWORDS[svc]
    assert required(env[setting], setting), f"{name}: {setting} must be required, not defaulted"
    given = {key: interpolate(value) for key, value in env.items() if value is not None}
    url = urlsplit(load(env=given | {setting: "pw", "CLINIC_STATE_DIR": "/nonexistent"}).database_url)
    assert url.scheme == "postgresql"
    assert url.username == svc
    assert url.password == "pw"
    assert (url.hostname, url.port, url.path) == ("postgres", 5432, "/clinic")


@pytest.mark.parametrize("name", [*SERVICES, *WORKERS])
def test_each_service_has_its_own_required_signing_key(services, name):
    """CLINIC_SECRET_KEY of an API and of its worker (MRN pseudonyms) is the service's own
    CLINIC_<SVC>_SECRET_KEY, required, never shared with another service."""
    svc = WORKERS.get(name, name)
    assert required(environment(services[name])["CLINIC_SECRET_KEY"], SECRET_KEYS[svc]), name


def test_no_secret_has_a_default(compose):
    """Every secret variable the file interpolates is required wherever it appears, and no
    value anywhere falls back to a default for one."""
    text = COMPOSE_FILE.read_text().split("\nx-", 1)[1]
    for match in _VAR.finditer(text):
        name = match.group("braced") or match.group("bare")
        if name in COMPOSE_SECRETS:
            assert match.group("op") == ":?" and name in match.group("arg"), match.group(0)
    assert variables_in(compose) >= COMPOSE_SECRETS


def test_migrate_sets_the_passwords_the_services_use(services):
    """The role passwords migrate sets are the services' own, and the admin password is
    the one postgres was initialised with."""
    migrate_env = environment(services["migrate"])
    for name in (*SERVICES, *WORKERS):
        svc = WORKERS.get(name, name)
        setting = DB_PASSWORDS[svc]
        assert migrate_env[setting] == environment(services[name])[setting]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == migrate_env["CLINIC_ADMIN_DB_PASSWORD"]


def test_bootstrap_takes_role_passwords_from_the_role_urls(tmp_path):
    """`clinic db bootstrap` (run by migrate) gives each role the password in its URL, or in
    CLINIC_<ROLE>_DB_PASSWORD; a role with neither is refused, never given a default."""
    from services.admin.database import role_passwords
    from services.admin.errors import CommandError
    from services.common.settings import load

    env = {
        "CLINIC_STATE_DIR": str(tmp_path),  # no local secrets folder to fall back on
        "CLINIC_INTAKE_DATABASE_URL": "postgresql://intake:a%27b%40c@postgres:5432/clinic",
        "CLINIC_REFERRAL_DATABASE_URL": "postgresql://referral:r@postgres:5432/clinic",
    }
    with pytest.raises(CommandError, match="no database password for triage: set CLINIC_TRIAGE_DB_PASSWORD"):
        role_passwords(load(env=env))
    settings = load(env={**env, "CLINIC_TRIAGE_DB_PASSWORD": "t/1"})
    assert role_passwords(settings) == {"intake": "a'b@c", "triage": "t/1", "referral": "r"}


# --------------------------------------------------------------------------- lifecycle


def test_restart_policies(services):
    for name in (*SERVICES, *WORKERS, "postgres", *BROKERS):
        assert services[name]["restart"] == "unless-stopped", name
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no", name


@pytest.mark.parametrize("svc", SERVICES)
def test_api_healthcheck_asks_readyz_without_curl(services, svc):
    check = services[svc]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"], check
    assert "/readyz" in check[3] and "urllib.request" in check[3]
    assert "CLINIC_BIND" in check[3], "the port comes from the service's own bind address"


def test_infrastructure_healthchecks(services):
    pg = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in pg and "-h 127.0.0.1" in pg
    for broker in BROKERS:
        kafka = " ".join(services[broker]["healthcheck"]["test"])
        assert "/opt/kafka/bin/kafka-topics.sh --bootstrap-server localhost:9092" in kafka
        assert "--command-config /tmp/clinic-admin.properties" in kafka, "as clinic-admin (the entrypoint writes it)"


def test_start_order(services):
    runtime = {
        "postgres": "service_healthy",
        **dict.fromkeys(BROKERS, "service_healthy"),
        "migrate": "service_completed_successfully",
        "topics": "service_completed_successfully",
    }
    for name in (*SERVICES, *WORKERS):
        assert depends_on(services[name]) == runtime, name
    assert depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    assert depends_on(services["topics"]) == dict.fromkeys(BROKERS, "service_healthy"), "RF 3 needs the three"


def test_dependency_conditions_can_be_met(services):
    for name, svc in services.items():
        for dep, condition in depends_on(svc).items():
            assert condition in ("service_healthy", "service_completed_successfully"), (name, dep)
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no check"
            else:
                assert services[dep]["restart"] == "no", f"{name} waits for {dep} to exit"


# --------------------------------------------------------------------------- infrastructure


def test_postgres(compose, services, host_access):
    pg = services["postgres"]
    assert pg["image"] == "${CLINIC_POSTGRES_IMAGE:-postgres:15}"
    env = pg["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_DB"]) == ("clinic_admin", "clinic")
    assert required(env["POSTGRES_PASSWORD"], "CLINIC_ADMIN_DB_PASSWORD")
    volume, _, path = pg["volumes"][0].partition(":")
    assert path == "/var/lib/postgresql/data" and volume in compose["volumes"]
    assert not published(pg), "docker-compose.yml publishes the proxy's ports alone"
    assert published(host_access["services"]["postgres"]) == [("127.0.0.1", "55432", "5432")], \
        "with the host-access file: local-only, on the default CLINIC_PG_PORT"


@pytest.mark.parametrize("node", [1, 2, 3])
def test_kafka_is_a_three_node_kraft_cluster(compose, services, host_access, node):
    name = BROKERS[node - 1]
    kafka = services[name]
    assert variables_in(kafka["image"]) == {"CLINIC_KAFKA_IMAGE"}, kafka["image"]
    repository, _, tag = interpolate(kafka["image"]).partition(":")
    assert repository == "apache/kafka" and tag.split(".")[0] == "4", kafka["image"]
    env = {key: str(interpolate(value)) for key, value in kafka["environment"].items()}
    assert env["CLUSTER_ID"] == str(services["kafka"]["environment"]["CLUSTER_ID"]), "one cluster id"
    assert env["KAFKA_NODE_ID"] == str(node) and kafka["hostname"] == name
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}

    listeners = dict(reversed(entry.split("://")) for entry in env["KAFKA_LISTENERS"].split(","))
    listeners = {listener: int(addr.rpartition(":")[2]) for addr, listener in listeners.items()}
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER" and "CONTROLLER" in listeners
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(
        f"{n}@{host}:{listeners['CONTROLLER']}" for n, host in enumerate(BROKERS, 1))
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(listeners)

    advertised = dict(entry.split("://") for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert "CONTROLLER" not in advertised
    assert set(advertised) <= set(listeners)
    internal = [listener for listener, addr in advertised.items() if addr == f"{name}:9092"]
    assert internal and listeners[internal[0]] == 9092, f"containers use {name}:9092"
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == internal[0]
    # The host listener: advertised by docker-compose.yml, published (on the host's loopback)
    # by the host-access file only.
    assert not published(kafka), "docker-compose.yml publishes the proxy's ports alone"
    host_ports = host_access["services"][name]["ports"]
    port = BROKER_HOST_PORTS[name]
    host = [listener for listener, addr in advertised.items() if addr == f"127.0.0.1:{port}"]
    assert host and published({"ports": host_ports}) == [("127.0.0.1", port, str(listeners[host[0]]))]
    # One host port per broker, advertised and published alike, whatever its setting says.
    raw_advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert variables_in(raw_advertised) == variables_in(host_ports) == {BROKER_PORT_SETTINGS[name]}

    # Every topic, the internal ones too, on the three; writes acknowledged by two.
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR", "KAFKA_DEFAULT_REPLICATION_FACTOR"):
        assert env[key] == "3", key
    for key in ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR",
                "KAFKA_MIN_INSYNC_REPLICAS"):
        assert env[key] == "2", key
    assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"

    volume, _, path = kafka["volumes"][0].partition(":")
    assert path == env["KAFKA_LOG_DIRS"] and volume in compose["volumes"]
    assert len({services[b]["volumes"][0] for b in BROKERS}) == 3, "a volume each"


def test_topics_match_infra_kafka(services):
    """Compose creates topics through `clinic kafka topics` alone (the broker
    refuses auto-creation); what it creates must be conventions.md's list, with
    the broker's default partition count matching theirs."""
    topics = documented_topics()
    assert len(topics) == 4 and all(t.endswith(".v1") for t in topics), topics
    partitions = re.search(r"\((\d+) partitions each", CONVENTIONS.read_text()).group(1)
    assert str(services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]) == partitions
    from services.common import settings

    assert set(settings.TOPICS) == set(topics)
    from services.admin.topics import ALL_TOPICS  # what `clinic kafka topics` and the local runner make

    assert set(ALL_TOPICS) == set(topics) | {f"{t}.dlq" for t in topics}


def test_local_kafka_image_reads_the_compose_environment_as_apache_kafka_does(services):
    """infra/containers/kafka's entrypoint makes server properties of the compose file's
    KAFKA_* settings by the apache/kafka image's rule (KAFKA_LOG_DIRS -> log.dirs)."""
    env = {key: str(interpolate(value)) for key, value in services["kafka"]["environment"].items()}
    result = subprocess.run(
        ["bash", str(ROOT / "infra" / "containers" / "kafka" / "kafka-run"), "--print-config"],
        env={"PATH": os.environ["PATH"], **env, "KAFKA_HEAP_OPTS": "-Xmx1g"},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    properties = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert properties == {
        key.removeprefix("KAFKA_").lower().replace("_", "."): value
        for key, value in env.items() if key.startswith("KAFKA_")
    }
    assert properties["log.dirs"] == "/var/lib/kafka/data"
    assert properties["advertised.listeners"] == "INTERNAL://kafka:9092,HOST://127.0.0.1:9092"
    assert "heap.opts" not in properties and "cluster.id" not in properties  # JVM and format settings


# --------------------------------------------------------------------------- image


def test_dockerfile_builds_from_python_311_and_runs_unprivileged():
    instructions = dockerfile_instructions()
    # FROM ${ARG} with the ARG's default (infra/containers/ passes a local Python 3.11).
    args = dict(arg.split("=", 1) for instruction, arg in instructions if instruction == "ARG" and "=" in arg)
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], arg.split()[0])
             for instruction, arg in instructions if instruction == "FROM"]
    assert bases and all(base.startswith("python:3.11") for base in bases), bases
    final_stage = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM"):]
    users = [args for instruction, args in final_stage if instruction == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    assert users[-1].split(":")[0] not in ("root", "0"), users[-1]


def test_dockerfile_installs_the_project_without_test_extras():
    runs = " ".join(args for instruction, args in dockerfile_instructions() if instruction == "RUN")
    assert re.search(r"pip (wheel|install)\b[^&;]*\s\.(\s|$)", runs), "builds the project from pyproject.toml"
    assert "[test]" not in runs and " -e " not in runs
    copied = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    for needed in ("pyproject.toml", "services"):
        assert any(args.split()[0] == needed for args in copied), f"{needed} is not copied into the build"
    # infra/ holds the local runners of `make run` and the tests: no production process needs them.
    assert not any(args.split()[0].startswith("infra") for args in copied), "infra/ is copied into the image"


def test_dockerignore_keeps_local_state_out():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", ".state"} <= ignored
    assert not ignored & {"services", "pyproject.toml"}


# --------------------------------------------------------------------------- real parser

if shutil.which("docker-compose"):

    def _compose_config(env: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
            cwd=ROOT,
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def test_docker_compose_v1_config_accepts_the_file():
        """Runs only where the docker-compose binary is installed (CI installs it)."""
        result = _compose_config({name: "x" for name in COMPOSE_SECRETS})
        assert result.returncode == 0, result.stderr

    def test_docker_compose_publishes_the_proxy_alone_without_the_host_access_file():
        """docker-compose's own reading of the files: the default publishes the proxy's two
        ports; with the host-access file, PostgreSQL and Kafka on 127.0.0.1 and on `edge` too."""
        env = {"PATH": os.environ["PATH"], **{name: "x" for name in COMPOSE_SECRETS}}

        def config(*files: Path) -> dict:
            result = subprocess.run(["docker-compose", *(arg for f in files for arg in ("-f", str(f))), "config"],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            return yaml.safe_load(result.stdout)["services"]

        alone = config(COMPOSE_FILE)
        assert {name for name, svc in alone.items() if svc.get("ports")} == {"proxy"}
        merged = config(COMPOSE_FILE, HOST_ACCESS_FILE)
        assert {name for name, svc in merged.items() if svc.get("ports")} == {"proxy", "postgres", *BROKERS}
        assert merged["postgres"]["ports"] == ["127.0.0.1:55432:5432/tcp"]
        for broker, port in BROKER_HOST_PORTS.items():
            assert merged[broker]["ports"] == [f"127.0.0.1:{port}:19092/tcp"], broker
        for name in ("postgres", *BROKERS):
            assert set(merged[name]["networks"]) == {"backend", "edge"}, name
        # Nothing else changes (docker-compose prints a merge with `{}` for null and lists reordered).
        def normal(value):
            if isinstance(value, dict):
                return {key: normal(item) for key, item in value.items()}
            if isinstance(value, list):
                return sorted((normal(item) for item in value), key=repr)
            return {} if value is None else value

        assert normal({name: svc for name, svc in merged.items() if name not in ("postgres", *BROKERS)}) == normal(
            {name: svc for name, svc in alone.items() if name not in ("postgres", *BROKERS)})

    @pytest.mark.parametrize("missing", sorted(COMPOSE_SECRETS))
    def test_docker_compose_refuses_to_start_without_each_secret(missing):
        result = _compose_config({name: "x" for name in COMPOSE_SECRETS if name != missing})
        assert result.returncode != 0 and missing in result.stderr, result.stderr


# --------------------------------------------------------------------------- Kafka security

ENTRYPOINT = ROOT / "infra" / "containers" / "kafka" / "clinic-entrypoint"


def test_kafka_sasl_and_acls(services):
    """The broker as infra/kafka/server.properties has it: SCRAM-SHA-512 on every client
    listener and between brokers, PLAIN on the controller listener, StandardAuthorizer with
    nothing allowed without an ACL, the broker and clinic-admin super users."""
    kafka = services["kafka"]
    env = {key: str(value) for key, value in kafka["environment"].items()}
    protocols = dict(entry.split(":") for entry in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols == {"INTERNAL": "SASL_PLAINTEXT", "HOST": "SASL_PLAINTEXT", "CONTROLLER": "SASL_PLAINTEXT"}
    assert env["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_MECHANISM_INTER_BROKER_PROTOCOL"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_MECHANISM_CONTROLLER_PROTOCOL"] == "PLAIN"
    assert env["KAFKA_LISTENER_NAME_CONTROLLER_SASL_ENABLED_MECHANISMS"] == "PLAIN"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:clinic-broker;User:clinic-admin"
    # No password in the file: the entrypoint makes the JAAS settings from these.
    assert not any("jaas" in key.lower() for key in env)
    for principal, setting in KAFKA_PASSWORDS.items():
        assert required(env[setting], setting), setting
    assert kafka["entrypoint"] == ["/opt/clinic/kafka-entrypoint"]
    assert "./infra/containers/kafka/clinic-entrypoint:/opt/clinic/kafka-entrypoint:ro" in kafka["volumes"]
    # The local broker's own settings agree (the same property names, the same principals).
    local = (ROOT / "infra" / "kafka" / "server.properties").read_text()
    for line in ("sasl.enabled.mechanisms=SCRAM-SHA-512", "sasl.mechanism.controller.protocol=PLAIN",
                 "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                 "allow.everyone.if.no.acl.found=false", "listener.name.controller.sasl.enabled.mechanisms=PLAIN"):
        assert line in local, line
    from infra.kafka.runner import BROKER_PASSWORD_SETTING, BROKER_PRINCIPAL
    from services.common.settings import KAFKA_PRINCIPALS as CODE_PRINCIPALS, kafka_password_setting

    assert (BROKER_PRINCIPAL, BROKER_PASSWORD_SETTING) == ("clinic-broker", KAFKA_PASSWORDS["clinic-broker"])
    assert {p: kafka_password_setting(p) for p in CODE_PRINCIPALS} == {
        p: s for p, s in KAFKA_PASSWORDS.items() if p != "clinic-broker"}


@pytest.mark.parametrize(("name", "principal"), [*sorted(WORKERS.items()), ("topics", "clinic-admin"),
                                                ("migrate", "clinic-admin")])
def test_kafka_clients_authenticate_as_their_principal(services, name, principal):
    env = environment(services[name])
    assert env["CLINIC_KAFKA_USERNAME"] == principal
    assert env["CLINIC_KAFKA_PASSWORD"] == services["kafka"]["environment"][KAFKA_PASSWORDS[principal]]


@pytest.mark.parametrize("name", SERVICES)
def test_apis_hold_no_kafka_password(services, name):
    """The APIs only write their outbox (the worker relays it); /readyz checks a TCP connect."""
    assert not {key for key in environment(services[name]) if key.startswith("CLINIC_KAFKA_") and "PASSWORD" in key}


def test_kafka_entrypoint_renders_the_broker_settings(services, tmp_path):
    """The entrypoint refuses a missing password, and exports the JAAS settings both images
    turn into listener.name.*.sasl.jaas.config (checked with the local image's renderer)."""
    env = {key: str(interpolate(value)) for key, value in services["kafka"]["environment"].items()
           if key.startswith("KAFKA_")}
    passwords = {setting: f"pw-{i}" for i, setting in enumerate(KAFKA_PASSWORDS.values())}
    script = f"source <(sed -n '1,/^umask 022/p' {ENTRYPOINT}); bash {ROOT}/infra/containers/kafka/kafka-run --print-config"
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.properties").write_text("")  # formatted: no format step here
    run = lambda extra: subprocess.run(  # noqa: E731
        ["bash", "-c", script], env={"PATH": os.environ["PATH"], **env, "KAFKA_LOG_DIRS": str(data),
                                     "CLINIC_KAFKA_ADMIN_PROPERTIES": str(tmp_path / "admin.properties"), **extra},
        capture_output=True, text=True, timeout=30)
    result = run(passwords)
    assert result.returncode == 0, result.stderr
    properties = dict(line.split("=", 1) for line in result.stdout.splitlines())
    broker = passwords["CLINIC_KAFKA_BROKER_PASSWORD"]
    scram = ('org.apache.kafka.common.security.scram.ScramLoginModule required username="clinic-broker" '
             f'password="{broker}";')
    assert properties["listener.name.internal.scram-sha-512.sasl.jaas.config"] == scram
    assert properties["listener.name.host.scram-sha-512.sasl.jaas.config"] == scram
    assert properties["listener.name.controller.plain.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="clinic-broker" '
        f'password="{broker}" user_clinic-broker="{broker}";')
    assert not [line for line in result.stdout.splitlines() if "pw-" in line and "jaas" not in line]
    admin = (tmp_path / "admin.properties")
    assert admin.stat().st_mode & 0o077 == 0, "clinic-admin's client settings: owner only"
    assert 'username="clinic-admin" password="{}"'.format(passwords["CLINIC_KAFKA_CLINIC_ADMIN_PASSWORD"]) in admin.read_text()
    missing = run({k: v for k, v in passwords.items() if k != "CLINIC_KAFKA_TRIAGE_PASSWORD"})
    assert missing.returncode != 0 and "CLINIC_KAFKA_TRIAGE_PASSWORD is not set" in missing.stderr


# --------------------------------------------------------------------------- TLS proxy


def test_the_tls_proxy_is_the_only_published_port(compose, services):
    """Issue 12 part 4: the proxy (the TLS proxy's own compose.conf, Debian's nginx) publishes
    HTTPS and HTTP, the only ports docker-compose.yml publishes; everything is on an internal
    network; the certificate and key come from compose secrets."""
    proxy = services["proxy"]
    assert published(proxy) == [("", "443", "443"), ("", "80", "80")]
    assert variables_in(proxy["ports"]) == {"CLINIC_PROXY_HTTPS_PORT", "CLINIC_PROXY_HTTP_PORT"}
    assert proxy["build"]["context"] == "./infra/proxy" and proxy["read_only"] is True
    assert proxy["cap_drop"] == ["ALL"]
    assert "COPY compose.conf " in (ROOT / "infra" / "proxy" / "Containerfile").read_text()
    conf = (ROOT / "infra" / "proxy" / "compose.conf").read_text()
    for line in ("listen 80;", "listen 443 ssl", "ssl_certificate /run/secrets/tls_cert;",
                 "ssl_certificate_key /run/secrets/tls_key;", "Strict-Transport-Security",
                 *(f"server {svc}:{port};" for svc, port in API_PORTS.items())):
        assert line in conf, line
    assert sorted(proxy["secrets"]) == sorted(TLS_FILES)
    for secret, variable in TLS_FILES.items():
        assert required(compose["secrets"][secret]["file"], variable), secret
    assert set(depends_on(proxy)) == set(SERVICES)
    assert {name for name, svc in services.items() if svc.get("ports")} == {"proxy"}


def test_networks(compose, services):
    """`backend` (every container) is internal: nothing can be published on it and nothing
    leaves it. The proxy is on `edge` too, for its ports; the intake worker on `egress`, its
    way out to the SMTP server and the SMS gateway; every other container on backend alone."""
    networks = compose["networks"]
    assert set(networks) == {"backend", "edge", "egress"}
    assert networks["backend"] == {"internal": True}
    for name in ("edge", "egress"):
        assert not (networks[name] or {}).get("internal"), f"{name} needs a route out"
    expected = {"proxy": ["backend", "edge"], "intake-worker": ["backend", "egress"]}
    for name, svc in services.items():
        assert svc["networks"] == expected.get(name, ["backend"]), name


def test_host_access_file_publishes_postgres_and_kafka_on_the_loopback_only(host_access):
    """infra/containers/compose.host-access.yml adds nothing but PostgreSQL's and Kafka's ports
    on 127.0.0.1 and the `edge` network they need (a port cannot be published on an internal
    network alone); its variables are documented in both files' headers."""
    assert set(host_access) == {"services"}
    assert set(host_access["services"]) == {"postgres", *BROKERS}
    for name, svc in host_access["services"].items():
        assert set(svc) == {"networks", "ports"}, name
        assert svc["networks"] == ["backend", "edge"], name
        assert [ip for ip, _, _ in published(svc)] == ["127.0.0.1"], f"{name}: the host's loopback only"
    used = variables_in(host_access)
    assert used == {"CLINIC_PG_PORT", *BROKER_PORT_SETTINGS.values()}
    header = COMPOSE_FILE.read_text().split("\nx-", 1)[0]
    assert {v for v in used if v not in header or v not in HOST_ACCESS_FILE.read_text().split("\nservices:")[0]} == set()
    assert "compose.host-access.yml" in header and "compose.host-access.yml" in COMPOSE_DOC.read_text()


# --------------------------------------------------------------------------- patient messages


def test_intake_worker_passes_the_patient_message_settings(services):
    """Each setting by name, `${NAME:-}`: ops set it on the host, an empty one is unset and the
    service's default applies (SMTP and SMS are optional: no host, no email). Only the intake
    worker (it sends the messages) gets them."""
    env = environment(services["intake-worker"])
    for name in PATIENT_MESSAGE_SETTINGS:
        assert env.get(name) == f"${{{name}:-}}", f"intake-worker: {name} should be ${{{name}:-}}"
    for other, svc in services.items():
        if other != "intake-worker":
            assert not set(environment(svc)) & set(PATIENT_MESSAGE_SETTINGS), other


def test_patient_message_settings_left_empty_are_the_service_defaults(services):
    """What the worker makes of the file's values with nothing set on the host: no email,
    no SMS, port 25, no STARTTLS, UTC (services/common/settings.py)."""
    from services.common.settings import load

    env = {key: interpolate(value) for key, value in environment(services["intake-worker"]).items()}
    settings = load(env=env | {"CLINIC_STATE_DIR": "/nonexistent"})
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_username) == (None, 25, None, None)
    assert (settings.smtp_password, settings.smtp_starttls) == (None, False)
    assert (settings.sms_gateway_url, settings.sms_gateway_token) == (None, None)
    assert (settings.clinic_time_zone, settings.clinic_contact_phone, settings.clinic_name) == ("UTC", None, None)


def test_optional_secrets_have_no_default(compose):
    """The SMTP password and the SMS gateway's token: empty unless the host gives them."""
    text = COMPOSE_FILE.read_text().split("\nx-", 1)[1]
    for match in _VAR.finditer(text):
        name = match.group("braced") or match.group("bare")
        if name in OPTIONAL_SECRETS:
            assert match.group(0) == f"${{{name}:-}}", match.group(0)
    assert variables_in(compose) >= OPTIONAL_SECRETS


def test_patient_message_settings_are_documented():
    header = COMPOSE_FILE.read_text().split("\nx-", 1)[0]
    doc = COMPOSE_DOC.read_text()
    for name in PATIENT_MESSAGE_SETTINGS:
        assert name in header, f"docker-compose.yml's header does not list {name}"
        assert name in doc, f"docs/compose.md does not list {name}"
