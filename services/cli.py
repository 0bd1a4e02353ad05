"""The `clinic` command: credentials, workers and operations, straight against the databases."""
from __future__ import annotations

import argparse
import importlib
import sys

import psycopg

from services.common import settings as settings_module
from services.common.auth import STAFF_ROLES, hash_secret, new_secret
from services.common.db import apply_migrations, connect

WORKERS = {"intake": "services.intake.worker", "triage": "services.triage.worker",
           "referral": "services.referral.worker"}


class CommandError(Exception):
    """A one-line message for the operator; exit code 1."""


def service_connection(settings, service: str) -> psycopg.Connection:
    """A connection as the service's own role, with its migrations applied, so that
    credentials can be created before the service has ever started."""
    conn = connect(settings.role_url(service))
    apply_migrations(conn, service, f"services.{service}")
    return conn


# -- kiosks -------------------------------------------------------------------------------
def kiosk_add(settings, name: str) -> str:
    from services.intake import store

    key = new_secret("kiosk")
    with service_connection(settings, "intake") as conn:
        try:
            store.add_kiosk(conn, name, key)
        except psycopg.errors.UniqueViolation:
            raise CommandError(f"a kiosk named {name!r} already exists") from None
    return key


def kiosk_revoke(settings, name: str) -> None:
    from services.intake import store

    with service_connection(settings, "intake") as conn:
        if not store.revoke_kiosk(conn, name):
            raise CommandError(f"no active kiosk named {name!r}")


# -- staff (identity schema: written only by this command, as the admin role) -------------
def staff_add(settings, name: str, role: str) -> str:
    token = new_secret("staff")
    with connect(settings.admin_database_url) as conn:
        try:
            conn.execute("INSERT INTO identity.staff (name, role, token_hash) VALUES (%s, %s, %s)",
                         (name, role, hash_secret(token)))
        except psycopg.errors.UniqueViolation:
            raise CommandError(f"a staff member named {name!r} already exists") from None
    return token


def staff_revoke(settings, name: str) -> None:
    with connect(settings.admin_database_url) as conn:
        cur = conn.execute("UPDATE identity.staff SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
                           (name,))
        if cur.rowcount != 1:
            raise CommandError(f"no active staff member named {name!r}")


# -- triage rule files ---------------------------------------------------------------------
def rules_preview(settings, path: str) -> str:
    """Check a candidate rule file, then show what it would change in the stored decisions."""
    from pathlib import Path

    from services.triage import preview, store
    from services.triage.domain import RuleFileError, default_rules_path, load_rules

    try:
        candidate = load_rules(Path(path))
    except RuleFileError as exc:  # names every bad entry, e.g. "rules[0].when.op: unknown operator"
        raise CommandError(str(exc)) from None
    current = load_rules(default_rules_path())
    with service_connection(settings, "triage") as conn:
        summary = preview.compare(store.stored_inputs(conn), current, candidate)
    return preview.render(summary, path)


# -- dead-letter topics -------------------------------------------------------------------
def run_dlq(settings, args: argparse.Namespace) -> None:
    import logging

    from services import dlq

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # our own one-line errors say it
    try:
        if args.action == "list":
            letters, replayed = dlq.list_dead_letters(settings.kafka_bootstrap, args.topic)
            print(dlq.render_list(args.topic, letters, replayed))
        else:
            result = dlq.replay(settings.kafka_bootstrap, args.topic, dry_run=args.dry_run)
            print(dlq.render_replay(result, dry_run=args.dry_run))
    except dlq.DlqError as exc:
        raise CommandError(str(exc)) from None


# -- argument parsing ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clinic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    kiosk = sub.add_parser("kiosk", help="kiosk API keys").add_subparsers(dest="action", required=True)
    kiosk.add_parser("add", help="create a kiosk and print its key").add_argument("name")
    kiosk.add_parser("revoke", help="end a kiosk's key at once").add_argument("name")

    staff = sub.add_parser("staff", help="staff tokens").add_subparsers(dest="action", required=True)
    staff_add_p = staff.add_parser("add", help="create a staff member and print their token")
    staff_add_p.add_argument("name")
    staff_add_p.add_argument("--role", choices=STAFF_ROLES, required=True)
    staff.add_parser("revoke", help="end a staff token at once").add_argument("name")

    worker = sub.add_parser("worker", help="run a service's worker (consumer + outbox relay)")
    worker.add_argument("service", choices=sorted(WORKERS))

    db = sub.add_parser("db", help="database administration").add_subparsers(dest="action", required=True)
    db.add_parser("bootstrap", help="create roles and schemas (admin URL), then apply every migration")

    kafka = sub.add_parser("kafka", help="Kafka administration").add_subparsers(dest="action", required=True)
    kafka.add_parser("topics", help="create the topics and their dead-letter topics")

    rules = sub.add_parser("rules", help="triage rule files").add_subparsers(dest="action", required=True)
    rules.add_parser("preview", help="check a candidate rule file and show how it would change the stored"
                     " decisions").add_argument("file")

    dlq = sub.add_parser("dlq", help="dead-letter topics: what consumers gave up on, and sending it back")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_actions.add_parser("list", help="show the parked messages (offset, key, error, time) of TOPIC.dlq"
                           ).add_argument("topic", help="e.g. clinic.symptom-reports.v1 (or its .dlq name)")
    dlq_replay = dlq_actions.add_parser("replay", help="send the messages parked in TOPIC.dlq since the last"
                                        " replay back to TOPIC (once the cause is fixed)")
    dlq_replay.add_argument("topic", help="e.g. clinic.symptom-reports.v1 (or its .dlq name)")
    dlq_replay.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="action", required=True)
    demo.add_parser("seed", help="demo kiosk, staff and a provider with a week of slots")
    return parser


def run(args: argparse.Namespace) -> None:
    settings = settings_module.load()
    if args.command == "kiosk":
        if args.action == "add":
            print(kiosk_add(settings, args.name))
        else:
            kiosk_revoke(settings, args.name)
    elif args.command == "staff":
        if args.action == "add":
            print(staff_add(settings, args.name, args.role))
        else:
            staff_revoke(settings, args.name)
    elif args.command == "worker":
        importlib.import_module(WORKERS[args.service]).main()
    elif args.command == "db":
        from services import ops

        ops.bootstrap(settings)
    elif args.command == "kafka":
        from services import ops

        ops.create_topics(settings)
    elif args.command == "rules":
        print(rules_preview(settings, args.file))
    elif args.command == "dlq":
        run_dlq(settings, args)
    elif args.command == "demo":
        from services import demo

        demo.seed(settings)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except CommandError as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"clinic: cannot reach the database ({first_line}); is the stack running (make run)?",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
