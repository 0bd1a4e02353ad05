"""Local PostgreSQL runner: initdb, start/stop in the foreground, bootstrap roles and schemas.

Used by the `make run` supervisor, by integration tests (`running_postgres`) and
by hand: `python -m infra.postgres start`.

PostgreSQL refuses to run as root. When we are root (CI is), initdb and the
server run as the unprivileged `postgres` user (created if missing), which then
owns the data and socket directories.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import secrets
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from infra.lifeline import stop_with_parent
from infra.local_secrets import ensure_local_secret, write_private
from services.admin.database import bootstrap_database
from services.common.secret_sources import local_secrets_dir
from services.common.settings import ADMIN_ROLE, SERVICES, db_password_setting

log = logging.getLogger(__name__)

# What the admin's password was before local passwords were random: a cluster made then
# still has it until its next bootstrap changes it (see _admin_password).
LEGACY_ADMIN_PASSWORD = "clinic_admin"
DEFAULT_DB = "clinic"
# Error DETAIL lines quote the offending values (a duplicate key's MRN, say) and
# STATEMENT lines the SQL: neither may reach the server log, which is not patient data.
PRIVACY_SETTINGS = ("-c", "log_error_verbosity=terse", "-c", "log_min_error_statement=panic")
RUN_AS_USER = "postgres"  # only used when we are root
# sun_path is 108 bytes including the trailing NUL; postgres fails late and
# obscurely on longer socket paths, so check up front.
MAX_SOCKET_PATH = 107


class InfraError(RuntimeError):
    """A local infrastructure problem, with a one-line message fit for a terminal."""


@dataclass(frozen=True)
class RunAs:
    """The OS user initdb and postgres run as."""

    name: str
    uid: int
    gid: int

    @property
    def is_self(self) -> bool:
        return self.uid == os.geteuid()

    def popen_kwargs(self) -> dict:
        if self.is_self:
            return {}
        # extra_groups=[] drops root's supplementary groups, not only its uid/gid.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if not self.is_self:
            os.chown(path, self.uid, self.gid)


def run_as() -> RunAs:
    """The current user, or `postgres` (created if needed) when we are root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam(RUN_AS_USER)
    except KeyError:
        _create_system_user(RUN_AS_USER)
        entry = pwd.getpwnam(RUN_AS_USER)
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _create_system_user(name: str) -> None:
    log.warning("running as root and no %r user exists: creating a system user", name)
    cmd = ["useradd", "--system", "--user-group", "--no-create-home",
           "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or str(exc)
        raise InfraError(f"could not create system user {name!r}: {detail.strip()}") from exc


def find_bin_dir() -> Path:
    """PostgreSQL's bin dir: $CLINIC_PG_BIN, else the newest Debian one, else PATH."""
    if env := os.environ.get("CLINIC_PG_BIN"):
        candidates = [Path(env)]
    else:
        debian = Path("/usr/lib/postgresql").glob("*/bin")
        candidates = sorted(debian, key=lambda p: _version_key(p.parent.name), reverse=True)
        if on_path := shutil.which("postgres"):
            candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "postgres").is_file() and (candidate / "initdb").is_file():
            return candidate
    raise InfraError("PostgreSQL binaries not found (looked in $CLINIC_PG_BIN, "
                     "/usr/lib/postgresql/*/bin and PATH); install postgresql")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now (tests race for it, which is fine in practice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _check_port_free(host: str, port: int) -> None:
    # create_server sets SO_REUSEADDR like postgres does, so a port with only
    # TIME_WAIT connections left counts as free, as it is for postgres.
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise InfraError(f"port {port} on {host} is already in use "
                             "(another PostgreSQL? set CLINIC_PG_PORT)") from exc
        raise InfraError(f"cannot listen on {host}:{port}: {os.strerror(exc.errno)}") from exc


# --- stale lock files -------------------------------------------------------

def stop_stale(state_dir: Path) -> None:
    """Clear the lock files a crashed server left under state_dir.

    A lock whose pid is dead, or alive but not a postgres of ours (pids are
    reused, in containers especially, and postgres then refuses to start), is
    removed. A postgres really running on our data dir is not touched: that
    raises InfraError saying so.
    """
    data_dir = Path(state_dir).absolute() / "pg" / "data"
    run_dir = Path(state_dir).absolute() / "pg" / "run"
    locks = [data_dir / "postmaster.pid", *run_dir.glob(".s.PGSQL.*.lock")]
    for lock in locks:
        if lock.exists():
            _clear_lock(lock, data_dir)


def _clear_lock(lock: Path, data_dir: Path) -> None:
    lines = lock.read_text(errors="replace").splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    if pid is not None and _is_our_postgres(pid, data_dir):
        raise InfraError(f"PostgreSQL is already running on {data_dir} (pid {pid}); "
                         f"stop it first (kill -INT {pid})")
    reason = "is garbled" if pid is None else f"names pid {pid}, which is not a postgres on it"
    log.warning("removing stale lock file %s: it %s", lock, reason)
    lock.unlink(missing_ok=True)


def _is_our_postgres(pid: int, data_dir: Path) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another uid: look closer below
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
            return False
        # postgres chdirs into its data dir, so cwd tells which cluster it serves.
        return Path(os.readlink(f"/proc/{pid}/cwd")) == data_dir.resolve()
    except FileNotFoundError:
        return False  # exited meanwhile
    except PermissionError:
        return True  # a postgres we cannot inspect: do not risk deleting its lock


# --- the runner -------------------------------------------------------------

class LocalPostgres:
    """One local cluster under state_dir/pg, listening on host:port."""

    def __init__(self, state_dir: Path, port: int, host: str = "127.0.0.1",
                 dbname: str = DEFAULT_DB) -> None:
        # Absolute, because postgres chdirs into its data dir before using paths.
        self.state_dir = Path(state_dir).absolute()
        self.port = port
        self.host = host
        self.dbname = dbname
        self.pg_dir = self.state_dir / "pg"
        self.data_dir = self.pg_dir / "data"
        self.run_dir = self.pg_dir / "run"
        self.log_path = self.state_dir / "logs" / "postgres.log"
        self._proc: subprocess.Popen | None = None

    # URLs ------------------------------------------------------------------

    def admin_url(self) -> str:
        return self._url(ADMIN_ROLE, self._admin_password(), self.dbname)

    def role_url(self, role: str) -> str:
        if role not in SERVICES:
            raise ValueError(f"unknown service role {role!r}; expected one of {SERVICES}")
        return self._url(role, self._role_password(role), self.dbname)

    # Passwords: random per state folder (infra/local_secrets.py), never a fixed default.

    def _admin_password(self) -> str:
        saved = local_secrets_dir(self.state_dir) / db_password_setting("admin")
        if not saved.is_file() and (self.data_dir / "PG_VERSION").exists():
            return LEGACY_ADMIN_PASSWORD  # a cluster older than random passwords
        return ensure_local_secret(self.state_dir, db_password_setting("admin"))

    def _role_password(self, role: str) -> str:
        return ensure_local_secret(self.state_dir, db_password_setting(role))

    def _url(self, user: str, password: str, dbname: str) -> str:
        return (f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
                f"@{self.host}:{self.port}/{quote(dbname, safe='')}")

    # initdb ----------------------------------------------------------------

    def ensure_initialized(self) -> None:
        """Create the cluster once; a no-op when it already exists."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        bin_dir = find_bin_dir()
        user = run_as()
        self._prepare_dirs(user)
        if self.data_dir.exists():
            if any(self.data_dir.iterdir()):
                raise InfraError(f"{self.data_dir} exists but holds no cluster; "
                                 "move it away or delete it")
            self.data_dir.rmdir()
        # initdb into a side directory and rename at the end, so an interrupted
        # initdb never leaves a half-made cluster that looks initialized.
        staging = self.pg_dir / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        user.chown(staging)
        log.info("initdb %s (as %s)", self.data_dir, user.name)
        self._run_initdb(bin_dir, staging, user)
        staging.rename(self.data_dir)

    def _run_initdb(self, bin_dir: Path, target: Path, user: RunAs) -> None:
        pwfile = self.pg_dir / "initdb.pw"
        pwfile.unlink(missing_ok=True)  # left by a crash: recreate with our mode
        pwfile.touch(mode=0o600)
        user.chown(pwfile)
        pwfile.write_text(self._admin_password() + "\n")
        cmd = [str(bin_dir / "initdb"), "-D", str(target), "-U", ADMIN_ROLE,
               f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
               "--auth-local=scram-sha-256", "--encoding=UTF8", "--no-locale",
               "--no-instructions"]
        initdb_log = self.log_path.with_name("initdb.log")
        try:
            with open(initdb_log, "ab") as out:
                result = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, cwd=self.pg_dir,
                                        **user.popen_kwargs())
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise InfraError(f"initdb failed (exit {result.returncode}): "
                             f"{_last_line(initdb_log)} (see {initdb_log})")

    def _prepare_dirs(self, user: RunAs) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(mode=0o700, exist_ok=True)
        if not user.is_self:
            user.chown(self.run_dir)
            _make_traversable(self.pg_dir, user)

    # start / stop ----------------------------------------------------------

    def start(self) -> subprocess.Popen:
        """Run the server as a foreground child process; its output goes to the log."""
        bin_dir = find_bin_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            raise InfraError(f"no cluster in {self.data_dir}; call ensure_initialized() first")
        # Checks that change nothing come first.
        self._check_socket_path()
        stop_stale(self.state_dir)
        _check_port_free(self.host, self.port)
        user = run_as()
        self._prepare_dirs(user)
        self._check_ownership(user)
        cmd = [str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
               "-k", str(self.run_dir), "-h", self.host, *PRIVACY_SETTINGS]
        log.info("starting postgres on %s:%d (data %s, log %s)",
                 self.host, self.port, self.data_dir, self.log_path)
        # The child keeps its own copy of the log fd; ours is closed right away.
        with open(self.log_path, "ab") as out:
            # Its own process group: a Ctrl-C in the terminal must reach the supervisor
            # only, which stops the services before the database they write to.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=self.pg_dir,
                                          process_group=0, **user.popen_kwargs(),
                                          # fast shutdown if we die: sessions rolled back, data safe
                                          preexec_fn=stop_with_parent(signal.SIGINT))
        return self._proc

    def _check_ownership(self, user: RunAs) -> None:
        owner = self.data_dir.stat().st_uid
        if owner == user.uid:
            return
        if user.is_self:
            raise InfraError(f"{self.data_dir} belongs to uid {owner}, not to you "
                             f"({user.name}); run as that user or delete the state dir")
        # A cluster made by a non-root developer, now started as root (or vice versa).
        log.warning("chowning %s to %s", self.data_dir, user.name)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.lchown(path, user.uid, user.gid)

    def _check_socket_path(self) -> None:
        socket_path = self.run_dir / f".s.PGSQL.{self.port}"
        if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
            raise InfraError(f"socket path {socket_path} is longer than {MAX_SOCKET_PATH} "
                             "bytes; use a shorter CLINIC_STATE_DIR")

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll until the server accepts connections (or has died, or timed out)."""
        deadline = time.monotonic() + timeout
        url = self._url(ADMIN_ROLE, self._admin_password(), "postgres")  # `clinic` may not exist yet
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise InfraError(f"postgres exited with code {self._proc.returncode} "
                                 f"during startup: {_last_line(self.log_path)} "
                                 f"(see {self.log_path})")
            try:
                with psycopg.connect(url, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise InfraError(f"postgres on {self.host}:{self.port} not ready after "
                                     f"{timeout:g}s: {str(exc).strip().splitlines()[-1]} "
                                     f"(see {self.log_path})") from exc
            time.sleep(0.1)

    def stop(self, proc: subprocess.Popen) -> None:
        """Fast shutdown (SIGINT: roll back open transactions, checkpoint) and wait."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log.warning("postgres ignored fast shutdown; sending SIGQUIT")
                proc.send_signal(signal.SIGQUIT)  # immediate shutdown: recovery on next start
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if proc is self._proc:
            self._proc = None

    # bootstrap -------------------------------------------------------------

    def bootstrap(self) -> None:
        """Create the database, roles, schemas and grants, as `clinic db bootstrap` does;
        the roles get (or are changed to) this state folder's random passwords."""
        if self._admin_password() == LEGACY_ADMIN_PASSWORD:
            self._replace_legacy_admin_password()
        bootstrap_database(self._url(ADMIN_ROLE, self._admin_password(), "postgres"), self.dbname,
                           {role: self._role_password(role) for role in SERVICES})

    def _replace_legacy_admin_password(self) -> None:
        new = secrets.token_urlsafe(32)
        with psycopg.connect(self._url(ADMIN_ROLE, LEGACY_ADMIN_PASSWORD, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(ADMIN_ROLE), sql.Literal(new)))
        folder = local_secrets_dir(self.state_dir)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(folder / db_password_setting("admin"), new)
        log.warning("replaced the local admin's old fixed password with a random one (%s)", folder)


def _make_traversable(path: Path, user: RunAs) -> None:
    """Give `user` search (x) permission on every directory down to path.

    Without it the server cannot reach its data dir, e.g. under a 0700 temp dir
    or /root. Only the x bit for others is added: listing stays forbidden.
    """
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == user.uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == user.gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            log.warning("adding o+x to %s so %s can reach %s", directory, user.name, path)
            os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return "(no log)"
    return lines[-1].strip() if lines else "(empty log)"


# --- helpers for tests and scripts ------------------------------------------

@contextlib.contextmanager
def running_postgres(state_dir: Path | None = None, port: int | None = None,
                     bootstrap: bool = True, dbname: str = DEFAULT_DB) -> Iterator[LocalPostgres]:
    """A started (and by default bootstrapped) server, stopped on exit.

    Without state_dir a temporary one is used and deleted afterwards; without
    port a free one is picked; `dbname`: the database its URLs name. For test fixtures:

        with running_postgres() as pg:
            yield pg
    """
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="clinic-pg-"))
            os.chmod(tmp, 0o711)  # mkdtemp's 0700 would stop a non-root server user
            state_dir = Path(tmp)
        pg = LocalPostgres(state_dir, port if port is not None else free_port(), dbname=dbname)
        pg.ensure_initialized()
        proc = pg.start()
        stack.callback(pg.stop, proc)
        pg.wait_ready()
        if bootstrap:
            pg.bootstrap()
        yield pg


# --- python -m infra.postgres start -----------------------------------------

def _from_env() -> LocalPostgres:
    repo = Path(__file__).resolve().parent.parent
    return LocalPostgres(
        Path(os.environ.get("CLINIC_STATE_DIR", repo / ".state")),
        int(os.environ.get("CLINIC_PG_PORT", "55432")),
        host=os.environ.get("CLINIC_PG_HOST", "127.0.0.1"),
        dbname=os.environ.get("CLINIC_DB_NAME", DEFAULT_DB),
    )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops postgres


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.postgres",
                                     description="Run the local PostgreSQL in the foreground.")
    parser.add_argument("command", choices=["start"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    pg = _from_env()
    try:
        pg.ensure_initialized()
        proc = pg.start()
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        pg.wait_ready()
        pg.bootstrap()
        print(f"PostgreSQL ready (Ctrl-C to stop)\n  admin: {pg.admin_url()}", flush=True)
        for role in SERVICES:
            print(f"  {role}: {pg.role_url(role)}", flush=True)
        code = proc.wait()
        print(f"postgres exited by itself with code {code}", file=sys.stderr)
        return code if code >= 0 else 128 - code  # killed by a signal: shell convention
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        pg.stop(proc)


if __name__ == "__main__":
    sys.exit(main())
