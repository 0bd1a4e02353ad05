"""`make compose-test`: docker-compose.yml run for real, through Podman, and tested end to end.

1. builds (or finds up to date) the images of infra/containers/images.py;
2. starts `podman system service` with its healthcheck ticker (podman_service.py);
3. runs `pytest tests/compose` against it (CLINIC_COMPOSE_TEST=1: without it that folder
   is not even collected), which brings the stack up, runs the flow, crashes two
   containers and takes the stack down again;
4. prints how long each part took.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.containers import images
from infra.containers.podman_service import podman_service

# The compose project (containers, network, volumes) of this run: two runs on one machine
# do not meet, and a run that was killed outright is cleaned up by the next one.
PROJECT_PREFIX = "clinic-ct-"
PROJECT = f"{PROJECT_PREFIX}{os.getpid()}"
PROJECT_LABEL = "com.docker.compose.project"
NEEDED = ("podman", "runc", "debootstrap", "docker-compose", "mvn", "java", "tar", "openssl")


def remove_project(project: str) -> None:
    """Containers, volumes and network of a compose project, with podman alone."""
    label = f"label={PROJECT_LABEL}={project}"
    containers = images.podman("ps", "-aq", "--filter", label, check=False).stdout.split()
    if containers:
        images.podman("rm", "--force", "--volumes", *containers, check=False)
    volumes = images.podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
    if volumes:
        images.podman("volume", "rm", "--force", *volumes, check=False)
    for network in ("default", "backend", "edge", "egress"):  # docker-compose.yml's networks
        images.podman("network", "rm", "--force", f"{project}_{network}", check=False)


def remove_abandoned_projects() -> None:
    """Projects of earlier runs whose process is gone (killed before it could clean up)."""
    names = images.podman("ps", "-a", "--format", f'{{{{index .Labels "{PROJECT_LABEL}"}}}}',
                          check=False).stdout.split()
    for name in sorted(set(names)):
        match = re.fullmatch(rf"{PROJECT_PREFIX}(\d+)", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            print(f"compose-test: removing {name}, left by a run that was killed")
            remove_project(name)


def main() -> int:
    started = time.monotonic()
    missing = [tool for tool in NEEDED if not shutil.which(tool)]
    if missing:
        print(f"compose-test: missing {', '.join(missing)}; as root: bash infra/install-debian-deps.sh",
              file=sys.stderr)
        return 2

    build_started = time.monotonic()
    built = images.build_all()
    build_seconds = time.monotonic() - build_started
    for name, seconds in built.items():
        print(f"  {name:34} {'up to date' if seconds is None else f'built in {seconds:.1f} s'}")

    remove_abandoned_projects()
    state = images.state_dir()
    # A short folder of its own for the socket: a unix socket path has at most 107 bytes.
    sock_dir = Path(tempfile.mkdtemp(prefix="clinic-podman-"))
    with podman_service(sock_dir / "podman.sock", state / "logs" / "podman-service.log",
                        [f"{PROJECT_LABEL}={PROJECT}"]) as docker_host:
        env = {
            **images.podman_env(),
            "DOCKER_HOST": docker_host,
            "CLINIC_COMPOSE_TEST": "1",
            "CLINIC_COMPOSE_PROJECT": PROJECT,
            "CLINIC_POSTGRES_IMAGE": images.POSTGRES,
            "CLINIC_KAFKA_IMAGE": images.KAFKA,
            "CLINIC_PROXY_IMAGE": images.PROXY,
            "CLINIC_COMPOSE_BUILD_SECONDS": f"{build_seconds:.1f}",
        }
        try:
            code = subprocess.run([sys.executable, "-m", "pytest", "tests/compose", *sys.argv[1:]],
                                  cwd=images.REPO, env=env).returncode
        finally:
            # The test takes the stack down itself; this is for a run cut short.
            if images.podman("ps", "-aq", "--filter", f"label={PROJECT_LABEL}={PROJECT}", check=False).stdout.split():
                print(f"compose-test: removing what is left of {PROJECT}")
                remove_project(PROJECT)
    shutil.rmtree(sock_dir, ignore_errors=True)
    print(f"compose-test: images {build_seconds:.1f} s, whole run {time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
