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
import shutil
import subprocess
import sys
import time

from infra.containers import images
from infra.containers.podman_service import podman_service

PROJECT = "clinic-compose-test"  # compose project name: containers, network and volumes
NEEDED = ("podman", "runc", "debootstrap", "docker-compose", "mvn", "java", "tar")


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

    state = images.state_dir()
    with podman_service(state / "podman.sock", state / "logs" / "podman-service.log") as docker_host:
        env = {
            **images.podman_env(),
            "DOCKER_HOST": docker_host,
            "CLINIC_COMPOSE_TEST": "1",
            "CLINIC_COMPOSE_PROJECT": PROJECT,
            "CLINIC_POSTGRES_IMAGE": images.POSTGRES,
            "CLINIC_KAFKA_IMAGE": images.KAFKA,
            "CLINIC_COMPOSE_BUILD_SECONDS": f"{build_seconds:.1f}",
        }
        try:
            code = subprocess.run([sys.executable, "-m", "pytest", "tests/compose", *sys.argv[1:]],
                                  cwd=images.REPO, env=env).returncode
        finally:
            # The test takes the stack down itself; this is for a run cut short.
            leftover = images.podman("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}",
                                     check=False).stdout.split()
            if leftover:
                print(f"compose-test: removing {len(leftover)} leftover containers of {PROJECT}")
                subprocess.run(["docker-compose", "-p", PROJECT, "down", "-v", "--remove-orphans"],
                               cwd=images.REPO, env=env, check=False)
    print(f"compose-test: images {build_seconds:.1f} s, whole run {time.monotonic() - started:.1f} s")
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
