"""The `clinic` command: credentials, workers and operations, straight against the databases."""
from __future__ import annotations

import argparse
import importlib
import sys

import psycopg

from services.common import settings as settings_module
from services.common.identity import STAFF_ROLES
from services.common.settings import SERVICES

from .errors import CommandError


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
    worker.add_argument("service", choices=SERVICES)

    db = sub.add_parser("db", help="database administration").add_subparsers(dest="action", required=True)
    db.add_parser("bootstrap", help="create roles and schemas (admin URL), then apply every migration")

    kafka = sub.add_parser("kafka", help="Kafka administration").add_subparsers(dest="action", required=True)
    kafka.add_parser("topics", help="create the topics and their dead-letter topics")

    rules = sub.add_parser("rules", help="triage rule files").add_subparsers(dest="action", required=True)
    preview = rules.add_parser("preview", help="check a candidate rule file and show how it would change the"
                               " stored decisions")
    preview.add_argument("file")
    preview.add_argument("--in-force", metavar="FILE", help="the rule file the stored decisions were made under"
                         " (default: the one shipped with triage); e.g. a previous version kept in"
                         " services/triage/rules/history/")
    rules.add_parser("replay", help="recompute the stored decisions from their inputs under the rules in"
                     " force; exit code 1 if any is not reproduced")

    dlq = sub.add_parser("dlq", help="dead-letter topics: what consumers gave up on, and sending it back")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    dlq_actions.add_parser("list", help="show the parked messages (offset, key, error, time) of TOPIC.dlq"
                           ).add_argument("topic", help="e.g. clinic.symptom-reports.v1 (or its .dlq name)")
    dlq_replay = dlq_actions.add_parser("replay", help="send the messages parked in TOPIC.dlq since the last"
                                        " replay back to TOPIC (once the cause is fixed)")
    dlq_replay.add_argument("topic", help="e.g. clinic.symptom-reports.v1 (or its .dlq name)")
    dlq_replay.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")

    audit = sub.add_parser("audit", help="the access audit: who read or changed a patient's referral, report"
                           " or decision, newest first")
    audit_who = audit.add_mutually_exclusive_group(required=True)
    audit_who.add_argument("--patient", metavar="MRN", help="every access to this patient's records")
    audit_who.add_argument("--staff", metavar="NAME", help="every access by this staff member")
    audit.add_argument("--limit", type=int, default=50, help="show at most this many rows (default 50)")

    purge = sub.add_parser("purge", help="pseudonymise the patient identity of cases closed longer than"
                           " CLINIC_RETENTION_IDENTITY_DAYS (the workers do it by themselves too)")
    purge.add_argument("--dry-run", action="store_true", help="say what is due (rows, oldest); change nothing")
    purge.add_argument("--service", choices=("intake", "referral"), action="append",
                       help="only this service (may be repeated; default both)")

    demo = sub.add_parser("demo", help="demo data").add_subparsers(dest="action", required=True)
    demo.add_parser("seed", help="demo kiosk, staff and a provider with a week of slots")
    return parser


def run(args: argparse.Namespace) -> int:
    """Carry out the parsed command; its exit code. Each branch imports only what it needs,
    so that `clinic worker triage` loads no Kafka admin code, and so on."""
    settings = settings_module.load()
    if args.command == "kiosk":
        from . import credentials

        if args.action == "add":
            print(credentials.kiosk_add(settings, args.name))
        else:
            credentials.kiosk_revoke(settings, args.name)
    elif args.command == "staff":
        from . import credentials

        if args.action == "add":
            print(credentials.staff_add(settings, args.name, args.role))
        else:
            credentials.staff_revoke(settings, args.name)
    elif args.command == "worker":
        importlib.import_module(f"services.{args.service}.worker").main()
    elif args.command == "db":
        from . import database

        database.bootstrap(settings)
        print("database ready: roles, schemas and migrations applied")
    elif args.command == "kafka":
        from . import topics

        from services.common.kafka_io import client_security

        # As clinic-admin when its password is configured (then also the services' ACLs);
        # PLAINTEXT otherwise, for a broker without SASL.
        security = client_security(settings, settings_module.KAFKA_ADMIN_PRINCIPAL)
        try:
            topics.ensure_topics(settings.kafka_bootstrap, security=security,
                                 retention=topics.Retention.from_settings(settings))
            if security:
                topics.ensure_acls(settings.kafka_bootstrap, security)
        except topics.TopicError as exc:
            raise CommandError(str(exc)) from None
        print(f"topics ready: {', '.join(topics.ALL_TOPICS)}" + (" (and the services' ACLs)" if security else ""))
    elif args.command == "rules":
        from . import rules

        if args.action == "preview":
            print(rules.preview(settings, args.file, in_force=args.in_force))
        else:
            text, all_reproduced = rules.replay(settings)
            print(text)
            return 0 if all_reproduced else 1
    elif args.command == "dlq":
        from . import dlq

        dlq.run(settings, args.action, args.topic, dry_run=getattr(args, "dry_run", False))
    elif args.command == "audit":
        from . import audit

        entries = (audit.by_patient(settings, args.patient, args.limit) if args.patient is not None
                   else audit.by_staff(settings, args.staff, args.limit))
        print(audit.render(entries, limit=args.limit))
    elif args.command == "purge":
        from . import purge

        print(purge.run(tuple(args.service or purge.PURGED), dry_run=args.dry_run))
    elif args.command == "demo":
        from . import demo

        demo.seed(settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except CommandError as exc:
        print(f"clinic: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"clinic: cannot reach the database ({first_line}); is the stack running (make run)?",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
