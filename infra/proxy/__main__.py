"""python -m infra.proxy run | render [--compose]

run:     the proxy alone, in the foreground, in front of APIs already listening on the
         configured ports (CLINIC_<SVC>_PORT), as `CLINIC_TLS_PROXY=1 make run` starts it;
         start the APIs with CLINIC_TRUSTED_PROXY_HOPS=1.
render:  print the configuration (--compose: the one compose uses, infra/proxy/compose.conf).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from infra.postgres import InfraError
from services.common import settings as settings_module

from .config import COMPOSE_PARAMS, render
from .runner import DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, LocalProxy


def local_proxy(env=os.environ) -> LocalProxy:
    settings = settings_module.load(env=env)
    return LocalProxy(
        state_dir=settings.state_dir,
        host="127.0.0.1",
        https_port=int(env.get("CLINIC_PROXY_HTTPS_PORT") or DEFAULT_HTTPS_PORT),
        http_port=int(env.get("CLINIC_PROXY_HTTP_PORT") or DEFAULT_HTTP_PORT),
        upstreams={svc: f"127.0.0.1:{port}" for svc, port in settings.ports.items()},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the proxy in the foreground")
    render_parser = sub.add_parser("render", help="print the nginx configuration")
    render_parser.add_argument("--compose", action="store_true", help="the compose configuration")
    args = parser.parse_args(argv)
    if args.command == "render":
        print(render(COMPOSE_PARAMS if args.compose else local_proxy().params()), end="")
        return 0
    proxy = local_proxy()
    try:
        proc = proxy.start(Path(proxy.dir / "proxy.log"))
        proxy.wait_ready()
    except InfraError as exc:
        print(f"proxy: {exc}", file=sys.stderr)
        return 1
    print(f"TLS proxy on {proxy.https_url} (HTTP {proxy.http_url} redirects); CA: {proxy.ca_file}; "
          f"log: {proxy.dir / 'proxy.log'}. Ctrl-C stops it.", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGQUIT)
        return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
