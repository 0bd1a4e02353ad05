"""Load generation: closed loop (N clients, each sending its next report when the last is
answered) and open loop (reports sent on a fixed schedule, whatever the answers' pace)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .http_client import KeepAliveClient

REPORTS_PATH = "/v1/reports"


@dataclass(frozen=True)
class Sample:
    sent_wall: float      # time.time() the report was due (open loop) or sent (closed loop)
    latency_s: float      # from then to the answer: an open loop's queueing delay counts
    status: int
    report_id: str | None


@dataclass(frozen=True)
class LoadResult:
    samples: list[Sample]
    elapsed_s: float      # first send to last answer

    @property
    def accepted(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 202]

    @property
    def accepted_per_s(self) -> float:
        return len(self.accepted) / self.elapsed_s if self.elapsed_s else 0.0


ClientFactory = Callable[[int], KeepAliveClient]  # client number -> its connection


def _run_threads(count: int, target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(n,), name=f"bench-load-{n}", daemon=True)
               for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def closed_loop(make_client: ClientFactory, bodies: Sequence[bytes], clients: int) -> LoadResult:
    """`clients` keep-alive connections share `bodies`, each posting its next one as soon as
    its last is answered."""
    lock = threading.Lock()
    queue = iter(bodies)
    samples: list[Sample] = []

    def client_loop(n: int) -> None:
        client = make_client(n)
        mine = []
        try:
            while True:
                with lock:
                    body = next(queue, None)
                if body is None:
                    break
                wall, began = time.time(), time.perf_counter()
                answer = client.post_report(REPORTS_PATH, body)
                mine.append(Sample(wall, time.perf_counter() - began, answer.status, answer.report_id))
        finally:
            client.close()
            with lock:
                samples.extend(mine)

    began = time.perf_counter()
    _run_threads(clients, client_loop)
    return LoadResult(samples, time.perf_counter() - began)


def open_loop(make_client: ClientFactory, bodies: Sequence[bytes], rate: float, senders: int) -> LoadResult:
    """Report i is due at start + i/rate. Each of `senders` connections takes the next due
    report, waits for its time and sends it; latency counts from the due time, so a stack
    that falls behind shows its queueing instead of slowing the load down (no coordinated
    omission). `senders` must exceed rate x latency, or the client itself is the queue."""
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))
    samples: list[Sample] = []
    start_mono, start_wall = time.perf_counter() + 0.2, time.time() + 0.2

    def sender_loop(n: int) -> None:
        client = make_client(n)
        mine = []
        try:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    break
                due = start_mono + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                answer = client.post_report(REPORTS_PATH, bodies[i])
                mine.append(Sample(start_wall + i / rate, time.perf_counter() - due, answer.status, answer.report_id))
        finally:
            client.close()
            with lock:
                samples.extend(mine)

    _run_threads(senders, sender_loop)
    return LoadResult(samples, time.perf_counter() - start_mono)
