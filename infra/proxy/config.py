"""The proxy's configuration: infra/proxy/nginx.conf.template with its {{placeholders}} filled in.

One template serves the local stack (`local_params`) and compose (`COMPOSE_PARAMS`, rendered
into infra/proxy/compose.conf; tests/unit/test_proxy_config.py keeps that file current).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from services.common.web import SECURITY_HEADERS

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "nginx.conf.template"
COMPOSE_CONF = HERE / "compose.conf"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass(frozen=True)
class ProxyParams:
    intake_upstream: str  # host:port of each API
    triage_upstream: str
    referral_upstream: str
    https_listen: str  # nginx `listen` address of the HTTPS server, e.g. 127.0.0.1:8443
    http_listen: str  # ... and of the plain-HTTP one that only redirects
    https_public_port: int  # the port browsers reach HTTPS on (the redirects name it)
    cert_file: str
    key_file: str
    pid_file: str
    temp_dir: str
    access_log: str = "/dev/stdout"
    # `user www-data` when nginx's master starts as root and its workers (which serve) drop
    # to www-data (compose); empty when nginx runs as an unprivileged user from the start.
    run_workers_as: str = ""
    worker_processes: str = "1"


def own_answer_headers(indent: str = " " * 12) -> str:
    """add_header lines for the proxy's own answers: the services' security headers
    (services/common/web.py SECURITY_HEADERS), so a refusal by the proxy looks like theirs."""
    return "\n".join(f'{indent}add_header {name} "{value}" always;' for name, value in SECURITY_HEADERS.items())


def render(params: ProxyParams, template: str | None = None) -> str:
    text = TEMPLATE.read_text() if template is None else template
    values = {key: str(value) for key, value in asdict(params).items()}
    for key, value in values.items():
        if any(c in value for c in ";{}'\"\n "):
            raise ValueError(f"proxy setting {key}={value!r} may not hold ; {{ }} quotes, spaces or newlines")
    values["https_port_suffix"] = "" if params.https_public_port == 443 else f":{params.https_public_port}"
    values["own_answer_headers"] = own_answer_headers()
    del values["run_workers_as"]
    values["user_directive"] = f"user {params.run_workers_as};" if params.run_workers_as else ""
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise KeyError(f"the proxy template needs {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


# Compose (docs/tls.md): nginx's master starts as root (it opens the certificate secrets and
# /dev/stdout, a pipe only root may open again, and binds 443/80) and its workers, which
# serve, run as www-data; the APIs are reached by service name on the internal network;
# cert and key are Docker secrets; pid and temp files on a tmpfs /tmp.
COMPOSE_PARAMS = ProxyParams(
    intake_upstream="intake:8001",
    triage_upstream="triage:8002",
    referral_upstream="referral:8003",
    https_listen="443",
    http_listen="80",
    https_public_port=443,
    cert_file="/run/secrets/tls_cert",
    key_file="/run/secrets/tls_key",
    pid_file="/tmp/nginx.pid",
    temp_dir="/tmp",
    worker_processes="auto",
    run_workers_as="www-data",
)
