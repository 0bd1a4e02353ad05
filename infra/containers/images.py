"""Builds the images docker-compose.yml runs, with Podman, where no public image registry
is reachable: every image starts from a Debian bookworm base made here with debootstrap.

    localhost/debian:bookworm        debootstrap --variant=minbase, from the machine's own
                                     Debian mirror (its apt sources), imported once
    localhost/clinic-python:3.11     python/Containerfile: stands in for python:3.11-slim
    localhost/clinic-referral:local  infra/Dockerfile on that Python (compose's app image)
    localhost/clinic-postgres:15     postgres/Containerfile: Debian's postgresql-15
    localhost/clinic-kafka:4.1.1     kafka/Containerfile: Debian's Java 17 + make run's jars
    localhost/clinic-proxy:local     infra/proxy/Containerfile: Debian's nginx, the TLS
                                     proxy's compose.conf (docs/tls.md)
    localhost/clinic-prometheus:local  infra/prometheus/Containerfile: Debian's prometheus,
                                     the alerting rules (README "Ops: alerts and runbooks")

Each image carries a label with a hash of its inputs (its files, its base image's id,
its build arguments); an image whose label matches is not built again, so a second run
costs a few `podman image inspect` calls. Run: `.venv/bin/python -m infra.containers.images`.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONTAINERS_CONF = HERE / "containers.conf"
LABEL = "org.clinic.inputs"

BASE = "localhost/debian:bookworm"
PYTHON = "localhost/clinic-python:3.11"
APP = "localhost/clinic-referral:local"
POSTGRES = "localhost/clinic-postgres:15"
KAFKA = "localhost/clinic-kafka:4.1.1"
PROXY = "localhost/clinic-proxy:local"
PROMETHEUS = "localhost/clinic-prometheus:local"
SUITE = "bookworm"

# The machine's trust store, mounted read-only into RUN steps only (never stored in an
# image): pip then trusts whatever TLS proxy the build machine trusts. Debian's pip
# (the venv's) reads exactly this file.
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MVN_COPY = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"


def state_dir() -> Path:
    return Path(os.environ.get("CLINIC_STATE_DIR", REPO / ".state")) / "containers"


def kafka_lib_dir() -> Path:
    # The jars `make run` and the tests run (tests/live_stack.py's kafka_lib_dir).
    return Path(os.environ.get("CLINIC_KAFKA_LIB_DIR", REPO / ".state" / "kafka" / "lib"))


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=podman_env(), check=check, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)


def image_inspect(name: str, template: str) -> str | None:
    result = podman("image", "inspect", "--format", template, name, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


# --------------------------------------------------------------------------- base image


@dataclass
class AptSource:
    uri: str
    suites: list[str]
    components: list[str]


def debian_sources(root: Path = Path("/")) -> list[AptSource]:
    """The machine's Debian bookworm entries (deb822 .sources files and one-line .list files)."""
    found: list[AptSource] = []
    apt = root / "etc" / "apt"
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            suites = [s for s in fields.get("suites", "").split() if s.startswith(SUITE)]
            for uri in fields.get("uris", "").split():
                if suites:
                    found.append(AptSource(uri, suites, fields.get("components", "main").split()))
    for path in [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2].startswith(SUITE):
                found.append(AptSource(words[1], [words[2]], words[3:] or ["main"]))
    return found


def debootstrap_mirror(sources: list[AptSource]) -> str:
    for source in sources:
        if SUITE in source.suites:
            return source.uri
    raise SystemExit(f"images: no Debian '{SUITE}' entry in /etc/apt/sources.list*; "
                     f"debootstrap needs the machine's Debian mirror")


def image_sources_file(sources: list[AptSource]) -> str:
    """deb822 text for the image: the machine's bookworm entries (updates, security)."""
    stanzas = [
        f"Types: deb\nURIs: {s.uri}\nSuites: {' '.join(s.suites)}\nComponents: main\n"
        f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        for s in sources
    ]
    return "\n".join(stanzas)


def ensure_base(rebuild: bool = False) -> str:
    """localhost/debian:bookworm, made once (about a minute); returns its image id."""
    if not rebuild and (image_id := image_inspect(BASE, "{{.Id}}")):
        return image_id
    for tool in ("debootstrap", "podman"):
        if not shutil.which(tool):
            raise SystemExit(f"images: {tool} not found; run `bash infra/install-debian-deps.sh` as root")
    sources = debian_sources()
    mirror = debootstrap_mirror(sources)
    work = Path(tempfile.mkdtemp(prefix="clinic-debootstrap-", dir="/var/tmp"))
    root = work / "rootfs"
    try:
        print(f"images: debootstrap --variant=minbase {SUITE} from the machine's mirror", flush=True)
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], check=True,
                       stdout=subprocess.DEVNULL)
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(image_sources_file(sources))
        for cache in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["podman", "import", "--quiet", "--change", "CMD [\"/bin/bash\"]", "-", BASE],
                       stdin=tar.stdout, env=podman_env(), check=True, stdout=subprocess.DEVNULL)
        tar.stdout.close()
        if tar.wait() != 0:
            raise SystemExit("images: tar of the debootstrap tree failed")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return image_inspect(BASE, "{{.Id}}")


# --------------------------------------------------------------------------- builds


@dataclass
class Build:
    name: str
    containerfile: Path
    context: Path
    inputs: list[Path]  # files whose content decides the image (with the base id and args)
    build_args: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)

    def inputs_hash(self, base_id: str) -> str:
        digest = hashlib.sha256()
        digest.update(f"base={base_id}\n".encode())
        for key, value in sorted(self.build_args.items()):
            digest.update(f"arg {key}={value}\n".encode())
        for path in sorted(set(self.inputs)):
            digest.update(f"file {path.relative_to(self.context)}\n".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()[:24]

    def ensure(self, base_id: str) -> tuple[str, float | None]:
        """(image id, build seconds or None when the image was up to date)."""
        want = self.inputs_hash(base_id)
        if image_inspect(self.name, f'{{{{index .Labels "{LABEL}"}}}}') == want:
            return image_inspect(self.name, "{{.Id}}"), None
        print(f"images: building {self.name}", flush=True)
        previous = image_inspect(self.name, "{{.Id}}")
        started = time.monotonic()
        cmd = ["podman", "build", "--network", "host", "--pull=never", "--layers",
               "--label", f"{LABEL}={want}", "-t", self.name, "-f", str(self.containerfile)]
        for key, value in self.build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        for volume in self.volumes:
            cmd += ["-v", volume]
        log = state_dir() / "logs" / f"build-{self.name.rsplit('/', 1)[-1].replace(':', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            result = subprocess.run([*cmd, str(self.context)], env=podman_env(), stdout=out,
                                    stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = log.read_text().splitlines()[-15:]
            raise SystemExit(f"images: building {self.name} failed (full log: {log}):\n" + "\n".join(tail))
        seconds = time.monotonic() - started
        image_id = image_inspect(self.name, "{{.Id}}")
        if previous and previous != image_id:
            # The build it replaces, now untagged; kept if a container still uses it. Not
            # `image prune`: that would drop the layer cache of the multi-stage builds too.
            podman("rmi", previous, check=False)
        return image_id, seconds


def files_under(root: Path, exclude_dirs: Iterable[str] = ("__pycache__",),
                exclude_suffixes: Iterable[str] = (".pyc", ".pyo")) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in exclude_dirs and not d.endswith(".egg-info")]
        out += [Path(dirpath) / f for f in filenames if not f.endswith(tuple(exclude_suffixes))]
    return out


def kafka_tools_jar() -> Path:
    """kafka-tools (TopicCommand, for kafka-topics.sh), copied once per pom by Maven."""
    pom = HERE / "kafka" / "pom.xml"
    want = hashlib.sha256(pom.read_bytes()).hexdigest()
    target = state_dir() / "kafka-tools"
    marker = target / ".pom-sha256"
    if not (marker.is_file() and marker.read_text().strip() == want):
        print("images: fetching kafka-tools with Maven", flush=True)
        shutil.rmtree(target, ignore_errors=True)
        result = subprocess.run(["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(pom), MVN_COPY,
                                 f"-DoutputDirectory={target}", "-DincludeScope=runtime"],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"images: Maven could not copy kafka-tools:\n{result.stdout}{result.stderr}")
        marker.write_text(want + "\n")
    jars = sorted(target.glob("kafka-tools-*.jar"))
    if len(jars) != 1:
        raise SystemExit(f"images: expected one kafka-tools jar in {target}, found {jars}")
    return jars[0]


# Files of infra/containers/kafka that docker-compose.yml bind-mounts into the Kafka
# container (either image), rather than parts of the local image: left out of its context
# and of its inputs hash.
KAFKA_MOUNTED = ("clinic-entrypoint",)


def kafka_context() -> Path:
    """infra/containers/kafka plus libs/: make run's jars (infra/kafka/pom.xml) and kafka-tools."""
    from infra.kafka.runner import LocalKafka  # needs the venv (kafka-python)

    lib_dir = kafka_lib_dir()
    LocalKafka(state_dir(), lib_dir=lib_dir).ensure_jars()
    context = state_dir() / "kafka-context"
    shutil.rmtree(context, ignore_errors=True)
    (context / "libs").mkdir(parents=True)
    for src in HERE.joinpath("kafka").iterdir():
        if src.name in KAFKA_MOUNTED:
            continue
        shutil.copy2(src, context / src.name)
    shutil.copy2(REPO / "infra" / "kafka" / "log4j2.properties", context / "log4j2.properties")
    # Jars only: not the runner's class-data archive, made by the host's JVM for the host's paths.
    for jar in [*sorted(lib_dir.glob("*.jar")), kafka_tools_jar()]:
        shutil.copy2(jar, context / "libs" / jar.name)
    return context


def builds() -> list[Build]:
    volumes = [f"{CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.is_file() else []
    python = Build(PYTHON, HERE / "python" / "Containerfile", HERE / "python",
                   [HERE / "python" / "Containerfile"], {"BASE_IMAGE": BASE})
    app = Build(APP, REPO / "infra" / "Dockerfile", REPO,
                [REPO / "infra" / "Dockerfile", REPO / ".dockerignore", REPO / "pyproject.toml",
                 *files_under(REPO / "services")],
                {"PYTHON_IMAGE": PYTHON}, volumes)
    postgres = Build(POSTGRES, HERE / "postgres" / "Containerfile", HERE / "postgres",
                     files_under(HERE / "postgres"), {"BASE_IMAGE": BASE})
    context = kafka_context()
    kafka = Build(KAFKA, context / "Containerfile", context, files_under(context), {"BASE_IMAGE": BASE})
    # The TLS proxy's own Containerfile and configuration (infra/proxy, docs/tls.md).
    proxy_dir = REPO / "infra" / "proxy"
    proxy = Build(PROXY, proxy_dir / "Containerfile", proxy_dir,
                  [proxy_dir / "Containerfile", proxy_dir / "compose.conf"], {"BASE_IMAGE": BASE})
    # Prometheus with the alerting rules (infra/prometheus; the rules' tests are not in the image).
    prom_dir = REPO / "infra" / "prometheus"
    prometheus = Build(PROMETHEUS, prom_dir / "Containerfile", prom_dir,
                       [prom_dir / "Containerfile", prom_dir / "prometheus.yml", prom_dir / "alerts.yml"],
                       {"BASE_IMAGE": BASE})
    return [python, app, postgres, kafka, proxy, prometheus]


def build_all(rebuild_base: bool = False) -> dict[str, float | None]:
    """Every image up to date; {image: build seconds, or None if it was cached}."""
    started = time.monotonic()
    had_base = not rebuild_base and image_inspect(BASE, "{{.Id}}") is not None
    base_id = ensure_base(rebuild_base)
    timings: dict[str, float | None] = {BASE: None if had_base else time.monotonic() - started}
    ids = {BASE: base_id}
    for build in builds():
        parent = build.build_args.get("PYTHON_IMAGE") or build.build_args["BASE_IMAGE"]
        ids[build.name], timings[build.name] = build.ensure(ids[parent])
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.containers.images", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild-base", action="store_true", help="debootstrap the Debian base again")
    args = parser.parse_args(argv)
    started = time.monotonic()
    for name, seconds in build_all(args.rebuild_base).items():
        print(f"  {name:34} {'up to date' if seconds is None else f'built in {seconds:.1f} s'}")
    print(f"images: ready in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
