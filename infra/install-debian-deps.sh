#!/usr/bin/env bash
# Installs the Debian packages the stack and its tests need, only those missing.
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
# npm: `make test` installs the browser tests' pinned axe-core with it (tests/browser/axe).
command -v npm >/dev/null || need+=(npm)
# The TLS proxy (infra/proxy, CLINIC_TLS_PROXY=1 make run, its tests): Debian's nginx, the
# binary package alone (nginx-light would add the echo module nothing here uses).
[[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v docker-compose >/dev/null || need+=(docker-compose)
# promtool, which `make test` checks and unit-tests the alerting rules with
# (tests/unit/test_alert_rules.py, infra/prometheus): Debian's prometheus package carries it
# (on a systemd host the package also enables its own prometheus.service; nothing here uses it).
command -v promtool >/dev/null || need+=(prometheus)
# `make compose-test` (docs/compose.md): Podman as the engine docker-compose drives,
# runc (crun refuses a hybrid cgroup layout), netavark + aardvark-dns for the compose
# network and its service names, catatonit for `init: true`, debootstrap for the
# images' Debian base. Listed one by one: apt would skip podman's recommends here.
for pkg in podman runc netavark aardvark-dns iptables catatonit debootstrap debian-archive-keyring; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || need+=("$pkg")
done
if ((${#need[@]} == 0)); then
    echo "deps: everything is installed"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing ${need[*]}; run: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${need[@]}"
