"""Trace and span ids (services/common/envelope.py): well formed, never all zeros, and not
repeated by gunicorn's forked workers (the random module reseeds in a forked child)."""
from __future__ import annotations

import os

from services.common import envelope


def test_new_traceparents_are_well_formed_and_distinct():
    parents = [envelope.new_traceparent() for _ in range(2000)]
    assert all(envelope.TRACEPARENT_RE.fullmatch(p) for p in parents)
    assert len({envelope.trace_id(p) for p in parents}) == len(parents)
    assert "0" * 32 not in {envelope.trace_id(p) for p in parents}


def test_a_child_keeps_the_trace_id_and_flags_with_a_new_span():
    parent = envelope.new_traceparent()
    child = envelope.child_traceparent(parent)
    assert envelope.trace_id(child) == envelope.trace_id(parent)
    assert child.split("-")[2] != parent.split("-")[2] and child.endswith("-01")


def test_forked_processes_make_different_ids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: as a gunicorn worker forked by the arbiter
        os.write(write, envelope.new_traceparent().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as child_output:
        from_child = child_output.read()
    assert envelope.TRACEPARENT_RE.fullmatch(from_child)
    assert envelope.trace_id(from_child) != envelope.trace_id(envelope.new_traceparent())
