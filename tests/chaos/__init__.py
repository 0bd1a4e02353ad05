"""The fault suite (issue 6): nothing acknowledged is lost or doubled when any process, the
broker or the database dies.

    make chaos                       # python -m tests.chaos --reports 100000 --minutes 30
    python -m tests.chaos --short    # what tests/e2e/test_chaos_short.py runs in `make test`

- stack.py      the stack under test: `python -m infra.stack` on a temporary state folder
- procs.py      its processes, found under the supervisor's pid in /proc (never by name)
- load.py       kiosks sending a steady mix of reports, retrying with the same Idempotency-Key
- faults.py     SIGKILL of each process; broker and database held down; scale-out; recovery
- kafka_probe   consumer groups, lag, dead-letter topics, poison injection
- checker.py    after the run: every acknowledged report final, right, and once
- report.py     the table, one row per fault
- scenario.py   all of it in order: profiles SHORT and full_profile(...)
"""
