"""Compose's Prometheus (infra/prometheus, README "Ops: alerts and runbooks"): it loaded every
alerting rule of alerts.yml and evaluates them without error, and it scrapes every API and every
worker replica over `backend`, with no port of its own published.

Run by `make compose-test` only (see conftest.py), after test_compose_stack.py (every
worker is scaled to two replicas by then: each must be a target)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import yaml

from tests.compose.conftest import APIS, WORKERS

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "alerts.yml"


def prometheus_api(stack, path: str) -> dict:
    """GET on Prometheus's HTTP API from inside its container (no port is published; bash's
    /dev/tcp, as its healthcheck: the image has no curl)."""
    container = stack.replicas()["prometheus"][0]["Id"]  # stack.container() wants one container per service
    script = (f'exec 3<>/dev/tcp/127.0.0.1/9090; printf "GET {path} HTTP/1.0\\r\\n\\r\\n" >&3; cat <&3')
    result = subprocess.run(["podman", "exec", container, "bash", "-c", script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("HTTP/1.0 200"), head
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def test_prometheus_loaded_the_alerting_rules_and_evaluates_them(stack):
    want = sorted(rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
                  for rule in group["rules"] if "alert" in rule)
    deadline = time.monotonic() + 60
    while True:
        rules = [rule for group in prometheus_api(stack, "/api/v1/rules")["groups"] for rule in group["rules"]]
        if all(rule.get("health") == "ok" for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert sorted(rule["name"] for rule in rules) == want
    assert {rule["name"]: rule.get("lastError") for rule in rules if rule.get("health") != "ok"} == {}


def test_prometheus_scrapes_every_api_and_worker_replica(stack):
    replicas = stack.replicas()
    assert not any((replicas["prometheus"][0]["HostConfig"].get("PortBindings") or {}).values()), \
        "Prometheus publishes no port"
    want = {("clinic-api", svc) for svc in APIS} | {("clinic-worker", w) for w in WORKERS}
    expected = len(APIS) + sum(len(replicas[w]) for w in WORKERS)  # every worker: 2 by now
    deadline = time.monotonic() + 90  # DNS refresh and scrape interval: 15 s each
    while True:
        targets = prometheus_api(stack, "/api/v1/targets?state=active")["activeTargets"]
        up = [(t["labels"]["job"], t["labels"]["component"]) for t in targets if t["health"] == "up"]
        if (set(up) == want and len(up) == expected) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert set(up) == want, [(t["labels"], t["health"], t.get("lastError")) for t in targets]
    assert len(up) == expected, [(t["labels"], t["health"], t.get("lastError")) for t in targets]
