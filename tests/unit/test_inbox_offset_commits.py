"""The consumer commits offsets without waiting for the broker (issue 15), and waits only
for what is still unacknowledged when it closes."""
from __future__ import annotations

from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from services.common.inbox import InboxConsumer

TP0, TP1 = TopicPartition("clinic.reports", 0), TopicPartition("clinic.reports", 1)


class FakeKafkaConsumer:
    def __init__(self):
        self.async_commits: list[tuple[dict, object]] = []  # (offsets, callback)
        self.sync_commits: list[dict] = []

    def commit_async(self, offsets, callback=None):
        self.async_commits.append((offsets, callback))

    def commit(self, offsets=None, timeout_ms=None):
        assert timeout_ms is not None, "a closing commit must not wait forever on a broker that is gone"
        self.sync_commits.append(offsets)


def _consumer() -> tuple[InboxConsumer, FakeKafkaConsumer]:
    inbox = InboxConsumer(service="triage", pool=None, kafka_bootstrap="unused:9092", group_id="clinic-triage",
                          handlers={})
    inbox._consumer = fake = FakeKafkaConsumer()
    return inbox, fake


def test_offsets_are_committed_without_waiting_for_the_broker():
    inbox, fake = _consumer()
    inbox._commit({TP0: 5, TP1: 9})
    assert fake.sync_commits == []
    assert [offsets for offsets, _ in fake.async_commits] == [
        {TP0: OffsetAndMetadata(5, "", -1), TP1: OffsetAndMetadata(9, "", -1)}]


def test_nothing_to_commit_sends_nothing():
    inbox, fake = _consumer()
    inbox._commit({})
    inbox._commit_before_close()
    assert fake.async_commits == [] and fake.sync_commits == []


def test_closing_waits_only_for_offsets_the_broker_has_not_acknowledged():
    inbox, fake = _consumer()
    inbox._commit({TP0: 5})
    inbox._commit({TP1: 9})
    inbox._commit({TP0: 7})
    (first, done_first), (second, done_second), (third, done_third) = fake.async_commits
    done_first(first, object())                # acknowledged, but a newer offset of TP0 is pending
    done_second(second, object())              # acknowledged: nothing left for TP1
    done_third(third, CommitFailedError("rebalanced"))  # failed: still to commit at close
    inbox._commit_before_close()
    assert fake.sync_commits == [{TP0: OffsetAndMetadata(7, "", -1)}]
    inbox._commit_before_close()
    assert fake.sync_commits == [{TP0: OffsetAndMetadata(7, "", -1)}], "once"


def test_all_acknowledged_means_no_closing_commit():
    inbox, fake = _consumer()
    inbox._commit({TP0: 5})
    (offsets, done), = fake.async_commits
    done(offsets, object())
    inbox._commit_before_close()
    assert fake.sync_commits == []
