"""The consumer commits offsets without waiting for the broker, at most every COMMIT_EVERY_S
(issue 15), and waits only for what is still unacknowledged when it closes."""
from __future__ import annotations

from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata, TopicPartition

from services.common.inbox import COMMIT_EVERY_S, InboxConsumer

TP0, TP1 = TopicPartition("clinic.reports", 0), TopicPartition("clinic.reports", 1)


class FakeKafkaConsumer:
    def __init__(self):
        self.async_commits: list[tuple[dict, object]] = []  # (offsets, callback)
        self.sync_commits: list[dict] = []
        self.assigned = {TP0, TP1}

    def assignment(self):
        return set(self.assigned)

    def commit_async(self, offsets, callback=None):
        self.async_commits.append((offsets, callback))

    def commit(self, offsets=None, timeout_ms=None):
        assert timeout_ms is not None, "a closing commit must not wait forever on a broker that is gone"
        self.sync_commits.append(offsets)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _consumer() -> tuple[InboxConsumer, FakeKafkaConsumer, Clock]:
    inbox = InboxConsumer(service="triage", pool=None, kafka_bootstrap="unused:9092", group_id="clinic-triage",
                          handlers={})
    inbox._consumer = fake = FakeKafkaConsumer()
    inbox._clock = clock = Clock()
    return inbox, fake, clock


def _sent(fake: FakeKafkaConsumer) -> list[dict]:
    return [offsets for offsets, _ in fake.async_commits]


def test_offsets_are_committed_without_waiting_for_the_broker():
    inbox, fake, _ = _consumer()
    inbox._commit({TP0: 5, TP1: 9})
    assert fake.sync_commits == []
    assert _sent(fake) == [{TP0: OffsetAndMetadata(5, "", -1), TP1: OffsetAndMetadata(9, "", -1)}]


def test_offsets_done_soon_after_a_commit_wait_and_go_together_with_the_newest_of_each_partition():
    inbox, fake, clock = _consumer()
    inbox._commit({TP0: 5})
    clock.now += COMMIT_EVERY_S / 2
    inbox._commit({TP0: 7})
    inbox._commit({TP1: 9})
    inbox._commit_when_due()  # the consumer loop's call after each poll
    assert _sent(fake) == [{TP0: OffsetAndMetadata(5, "", -1)}]
    clock.now += COMMIT_EVERY_S / 2
    inbox._commit_when_due()
    assert _sent(fake) == [{TP0: OffsetAndMetadata(5, "", -1)},
                           {TP0: OffsetAndMetadata(7, "", -1), TP1: OffsetAndMetadata(9, "", -1)}]
    clock.now += 10 * COMMIT_EVERY_S
    inbox._commit_when_due()
    assert len(fake.async_commits) == 2, "nothing new: nothing sent"


def test_offsets_of_partitions_taken_away_are_not_committed():
    """After a rebalance their new owner starts from the last commit; an older offset of
    ours must not overwrite what it commits."""
    inbox, fake, clock = _consumer()
    inbox._commit({TP0: 5})
    inbox._commit({TP0: 6, TP1: 9})  # held
    fake.assigned = {TP1}
    clock.now += COMMIT_EVERY_S
    inbox._commit_when_due()
    assert _sent(fake)[1:] == [{TP1: OffsetAndMetadata(9, "", -1)}]
    inbox._commit({TP0: 8, TP1: 10})  # held (and TP0 5, TP1 9 not acknowledged), then TP1 goes too
    fake.assigned = set()
    inbox._commit_before_close()
    assert fake.sync_commits == []


def test_nothing_to_commit_sends_nothing():
    inbox, fake, _ = _consumer()
    inbox._commit({})
    inbox._commit_when_due()
    inbox._commit_before_close()
    assert fake.async_commits == [] and fake.sync_commits == []


def test_closing_commits_what_waits_and_what_the_broker_has_not_acknowledged():
    inbox, fake, clock = _consumer()
    inbox._commit({TP0: 5})
    clock.now += COMMIT_EVERY_S
    inbox._commit({TP1: 9})
    clock.now += COMMIT_EVERY_S
    inbox._commit({TP0: 7})
    (first, done_first), (second, done_second), (third, done_third) = fake.async_commits
    done_first(first, object())                # acknowledged, but a newer offset of TP0 is pending
    done_second(second, object())              # acknowledged: nothing left for TP1
    done_third(third, CommitFailedError("rebalanced"))  # failed: still to commit at close
    inbox._commit({TP1: 11})                   # done just now: not sent yet
    inbox._commit_before_close()
    assert fake.sync_commits == [{TP0: OffsetAndMetadata(7, "", -1), TP1: OffsetAndMetadata(11, "", -1)}]
    inbox._commit_before_close()
    assert len(fake.sync_commits) == 1, "once"


def test_all_acknowledged_means_no_closing_commit():
    inbox, fake, _ = _consumer()
    inbox._commit({TP0: 5})
    (offsets, done), = fake.async_commits
    done(offsets, object())
    inbox._commit_before_close()
    assert fake.sync_commits == []
