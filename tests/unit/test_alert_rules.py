"""The Prometheus alerting rules (infra/prometheus, issue 16): promtool accepts the configuration
and the rules, the rules' own unit tests pass (infra/prometheus/alerts_test.yml: each alert fires
on a series that should fire it and stays silent on one that should not), every alert says how
bad it is and links to its runbook in the README, and the scrape configuration names the
metrics endpoints docker-compose.yml really runs.

promtool comes from Debian's `prometheus` package (infra/install-debian-deps.sh installs it);
without it these tests fail rather than skip: CI installs it."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "infra" / "prometheus"
CONFIG = PROM_DIR / "prometheus.yml"
RULES = PROM_DIR / "alerts.yml"
RULE_TESTS = PROM_DIR / "alerts_test.yml"
README = ROOT / "README.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"
SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install Debian's `prometheus` package "
                    "(as root: `bash infra/install-debian-deps.sh`, or `apt-get install prometheus`)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=PROM_DIR)


def passed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == 0 and "FAILED" not in result.stdout + result.stderr


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation but - and _ dropped,
    spaces made hyphens."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def readme_anchors() -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            anchors.add(github_anchor(m.group(1)))
    return anchors


# --------------------------------------------------------------------------- promtool


def test_promtool_accepts_the_configuration_and_its_rule_files():
    result = promtool("check", "config", str(CONFIG))
    assert passed(result), result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, "prometheus.yml must load alerts.yml"


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", str(RULES))
    assert passed(result), result.stdout + result.stderr


def test_the_rules_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert passed(result), result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# --------------------------------------------------------------------------- the rules themselves


def test_the_alerts_issue_16_asks_for_are_there():
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "ClinicOutboxBacklogOld",          # outbox backlog age
        "ClinicConsumerLagGrowing",        # consumer lag growing
        "ClinicDeadLetters",               # dead letters appearing
        "ClinicDatabaseDown",              # database down
        "KafkaUnderReplicatedPartitions",  # broker under-replicated partitions
        "ClinicWorkerNotConsuming",        # a worker not consuming
        "ClinicHttp5xxRate",               # 5xx rate
    } <= names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels'].get('severity')}")
def test_each_alert_has_a_for_a_severity_and_its_annotations(rule):
    assert "for" in rule, "say how long the condition must hold (`for: 0m` if at once)"
    assert rule["labels"].get("severity") in SEVERITIES
    for key in ("summary", "description", "runbook_url"):
        assert rule.get("annotations", {}).get(key), f"annotation {key} missing"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: f"{r['alert']}-{r['labels'].get('severity')}")
def test_each_alert_links_to_its_runbook_section_in_the_readme(rule):
    url = rule["annotations"]["runbook_url"]
    path, _, anchor = url.partition("#")
    assert path == "README.md" and anchor, url
    assert anchor in readme_anchors(), f"README.md has no heading whose anchor is #{anchor}"
    assert anchor == f"alert-{rule['alert'].lower()}", "one section per alert, named after it"


def test_each_alert_is_unit_tested_firing_and_silent():
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    fired: set[str] = set()
    silent: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never seen firing in alerts_test.yml"
    assert names - silent == set(), "alerts never seen silent in alerts_test.yml"


# --------------------------------------------------------------------------- scrape targets


def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def bind_port(env: dict, key: str) -> str:
    return str(env[key]).rpartition(":")[2]


def test_the_scrape_targets_are_the_compose_services_metrics_ports():
    """Each API on its CLINIC_BIND port, each worker on its CLINIC_METRICS_BIND port, by the
    compose service name (on `backend`); nothing else."""
    services = compose_services()
    jobs = {job["job_name"]: job for job in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    assert set(jobs) == {"clinic-api", "clinic-worker"}
    apis = {(t, group["labels"]["component"]) for group in jobs["clinic-api"]["static_configs"]
            for t in group["targets"]}
    assert apis == {(f"{name}:{bind_port(services[name]['environment'], 'CLINIC_BIND')}", name)
                    for name in ("intake", "triage", "referral")}
    workers = [name for name, svc in services.items() if "worker" in (svc.get("command") or [])]
    assert sorted(workers) == ["intake-worker", "referral-worker", "triage-worker"]
    (dns,) = jobs["clinic-worker"]["dns_sd_configs"]
    assert sorted(dns["names"]) == sorted(workers) and dns["type"] == "A"
    for name in workers:
        assert str(dns["port"]) == bind_port(services[name]["environment"], "CLINIC_METRICS_BIND"), name
    # ClinicWorkerNotConsuming notices a worker with no address at all by name:
    rules = RULES.read_text()
    for name in workers:
        assert f'absent(up{{job="clinic-worker", component="{name}"}})' in rules, name


def test_compose_runs_prometheus_with_these_rules_on_backend_alone():
    prom = compose_services()["prometheus"]
    assert prom["networks"] == ["backend"], "internal network only"
    assert not prom.get("ports"), "no published port"
    assert prom["build"]["context"] == "./infra/prometheus"
    containerfile = (PROM_DIR / "Containerfile").read_text()
    for name in ("prometheus.yml", "alerts.yml"):
        assert re.search(rf"^COPY .*\b{re.escape(name)}\b", containerfile, re.M), f"{name} not in the image"
