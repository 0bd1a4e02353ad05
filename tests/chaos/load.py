"""The load: kiosks sending a steady stream of symptom reports, as real kiosks would.

Each logical report gets one Idempotency-Key and one body. On a connection error, a
timeout or a 5xx, the kiosk sends the *same* key and body again (with backoff) until it
gets its 202 or gives up after `give_up_s`; an acknowledgement is recorded with the
report id the service gave. Everything the kiosks did is kept in memory for the checker.

Reports are a mix of urgent, specialist and self-care cases with varied answers (the
expected level is computed later by the pure engine on the same body); most patients are
new (unique MRNs), some come back (a repeat patient reuses an earlier MRN and name).
"""
from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests

LOCATIONS = ("groin", "inner_hip", "outer_hip", "upper_thigh", "buttock")
MEASURES = ("rest", "activity_reduction", "ice", "stretching", "strengthening")
SPORTS = ("running", "trail running", "football", "tennis", "cycling", "triathlon")
GIVEN = ("Ana", "Rui", "Maya", "Ole", "Sofia", "Tomas", "Ines", "Kai", "Lena", "Noah")
FAMILY = ("Silva", "Costa", "Berg", "Okafor", "Tanaka", "Novak", "Garcia", "Moreau")


@dataclass
class Submission:
    """One logical report: one key, one body, however many attempts it took."""
    seq: int
    kiosk: str
    key: str
    body: dict
    kind: str                      # the generator's intent; the engine decides the level
    first_attempt: float           # time.time()
    attempts: int = 0
    report_id: str | None = None   # from the first 202
    acked_at: float | None = None
    other_ids: set[str] = field(default_factory=set)  # a 202 naming another id: a double
    errors: list[str] = field(default_factory=list)   # last few, for the report
    gave_up: bool = False

    @property
    def acked(self) -> bool:
        return self.report_id is not None


class ReportFactory:
    def __init__(self, seed: int, run_id: str, repeat_share: float = 0.12,
                 mix: tuple[float, float, float] = (0.3, 0.3, 0.4)):
        self.rng = random.Random(seed)
        self.run_id = run_id
        self.repeat_share = repeat_share
        self.mix = mix
        self.patients: list[dict] = []
        self._lock = threading.Lock()
        self._n = 0

    def _patient(self, new: bool = False) -> dict:
        if not new and self.patients and self.rng.random() < self.repeat_share:
            return dict(self.rng.choice(self.patients))
        self._n += 1
        patient = {"mrn": f"CH-{self.run_id}-{self._n:07d}", "given_name": self.rng.choice(GIVEN),
                   "family_name": self.rng.choice(FAMILY),
                   "birth_date": f"{self.rng.randint(1950, 2006)}-0{self.rng.randint(1, 9)}-1{self.rng.randint(0, 9)}",
                   "phone": f"+1555{self.rng.randint(1000000, 9999999)}"}
        self.patients.append(patient)
        return dict(patient)

    def make(self, kind: str | None = None, new_patient: bool = False) -> tuple[str, dict]:
        with self._lock:
            rng = self.rng
            kind = kind or rng.choices(("urgent", "specialist", "self_care"), weights=self.mix)[0]
            today = datetime.now(UTC).date()
            severity = rng.randint(0, 6)
            onset, trauma = "gradual", False
            locking, instability, dysfunction = False, False, False
            days_ago = rng.randint(0, 30)
            measures, home_days, improving = [], 0, "not_tried"
            if rng.random() < 0.5:
                measures = rng.sample(MEASURES, rng.randint(1, 3))
                home_days = rng.randint(1, 13)
                improving = rng.choice(("yes", "no"))
            if kind == "urgent":
                which = rng.choice(("severe", "sudden", "trauma", "unsure_trauma"))
                if which == "severe":
                    severity = rng.randint(7, 10)
                elif which == "sudden":
                    onset = "sudden"
                elif which == "trauma":
                    trauma = True
                else:
                    trauma = None
            elif kind == "specialist":
                which = rng.choice(("locking", "instability", "dysfunction", "not_improving", "persistent"))
                if which == "locking":
                    locking = rng.choice((True, None))
                elif which == "instability":
                    instability = True
                elif which == "dysfunction":
                    dysfunction = rng.choice((True, None))
                elif which == "not_improving":
                    measures, home_days, improving = ["rest"], rng.randint(14, 60), "no"
                else:
                    days_ago = rng.randint(42, 200)
            body = {
                "patient": self._patient(new_patient),
                "activity": {"sport": rng.choice(SPORTS), "high_impact": rng.choice((True, False))},
                "pain": {"locations": rng.sample(LOCATIONS, rng.randint(1, 3)),
                         "side": rng.choice(("left", "right", "both")), "severity": severity,
                         "onset": onset, "started_on": (today - timedelta(days=days_ago)).isoformat(),
                         "direct_trauma": trauma},
                "function": {"joint_locking": locking, "instability": instability,
                             "persistent_dysfunction": dysfunction},
                "home_care": {"measures": measures, "days": home_days, "improving": improving},
            }
            return kind, body


class Kiosk:
    """One kiosk's HTTP client: POST with its key, retry the same key and body until acked."""

    def __init__(self, base_url: str, name: str, key: str, *, timeout: float = 10.0, give_up_s: float = 180.0):
        self.base_url = base_url
        self.name = name
        self.key = key
        self.timeout = timeout
        self.give_up_s = give_up_s
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy between us and 127.0.0.1

    def close(self) -> None:
        self.session.close()

    def send(self, sub: Submission, stop: threading.Event | None = None) -> Submission:
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": sub.key}
        delay = 0.25
        deadline = sub.first_attempt + self.give_up_s
        while True:
            sub.attempts += 1
            outcome = None
            try:
                response = self.session.post(f"{self.base_url}/v1/reports", json=sub.body, headers=headers,
                                             timeout=(3.0, self.timeout))
                if response.status_code == 202:
                    report_id = response.json()["report_id"]
                    if sub.report_id is None:
                        sub.report_id, sub.acked_at = report_id, time.time()
                    elif report_id != sub.report_id:
                        sub.other_ids.add(report_id)
                    return sub
                outcome = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    # 4xx is not a transient failure: a real kiosk would show an error.
                    sub.errors.append(f"{outcome}: {response.text[:200]}")
                    sub.gave_up = True
                    return sub
            except requests.RequestException as exc:
                outcome = type(exc).__name__
                # A fresh connection next time: the old one may point at a dead process.
                self.session.close()
            sub.errors = (sub.errors + [outcome])[-5:]
            if time.time() >= deadline:
                sub.gave_up = True
                return sub
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


class LoadDriver:
    """`threads` kiosk threads sharing a target rate (reports/s); pause()/resume() hold new
    reports (retries of started ones go on); `max_reports` ends the load by itself."""

    def __init__(self, base_url: str, kiosk_keys: dict[str, str], factory: ReportFactory, *,
                 rate: float, threads: int, max_reports: int | None = None, give_up_s: float = 180.0,
                 backlog_fn=None, max_backlog: int | None = None):
        self.base_url = base_url
        self.kiosk_keys = kiosk_keys
        self.factory = factory
        self.rate = rate
        self.n_threads = threads
        self.max_reports = max_reports
        self.give_up_s = give_up_s
        self.backlog_fn = backlog_fn      # () -> reports acknowledged but not final yet
        self.max_backlog = max_backlog
        self.submissions: list[Submission] = []
        self._lock = threading.Lock()
        self._next_at = time.monotonic()
        self._stop = threading.Event()
        self._running = threading.Event()    # cleared by pause()
        self._running.set()
        self._unthrottled = threading.Event()  # cleared while the backlog is too long
        self._unthrottled.set()
        self._throttle_suspended = False
        self._threads: list[threading.Thread] = []
        self.backlog = 0
        self.throttled_s = 0.0

    # -- control --------------------------------------------------------------------
    def start(self) -> None:
        names = list(self.kiosk_keys)
        for i in range(self.n_threads):
            name = names[i % len(names)]
            kiosk = Kiosk(self.base_url, name, self.kiosk_keys[name], give_up_s=self.give_up_s)
            thread = threading.Thread(target=self._loop, args=(kiosk,), name=f"kiosk-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.backlog_fn is not None and self.max_backlog:
            threading.Thread(target=self._watch_backlog, name="backlog", daemon=True).start()

    @contextlib.contextmanager
    def unthrottled(self):
        """Ignore the backlog limit meanwhile (while the broker is down, say: the point is
        that kiosks still get their 202s then)."""
        self._throttle_suspended = True
        self._unthrottled.set()
        try:
            yield
        finally:
            self._throttle_suspended = False

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        with self._lock:
            self._next_at = max(self._next_at, time.monotonic())
        self._running.set()

    def stop(self, timeout: float | None = None) -> None:
        """No new reports; wait for the started ones to be acked or given up."""
        self._stop.set()
        self._running.set()
        self._unthrottled.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.give_up_s + 30)
        for thread in self._threads:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            raise AssertionError(f"kiosk threads still busy after stop: {stuck}")

    def submit_now(self, kiosk: Kiosk, kind: str = "urgent") -> Submission:
        """One report from the calling thread (a canary), recorded with the others."""
        _kind, body = self.factory.make(kind, new_patient=True)
        with self._lock:
            sub = Submission(seq=len(self.submissions), kiosk=kiosk.name, key=f"chaos-canary-{uuid.uuid4()}",
                             body=body, kind=kind, first_attempt=time.time())
            self.submissions.append(sub)
        return kiosk.send(sub)

    @property
    def done(self) -> bool:
        return self._stop.is_set() or (self.max_reports is not None and len(self.submissions) >= self.max_reports)

    # -- internals ------------------------------------------------------------------
    def _take_turn(self) -> Submission | None:
        while True:
            if self._stop.is_set():
                return None
            if not (self._running.wait(timeout=0.2) and self._unthrottled.wait(timeout=0.2)):
                continue
            with self._lock:
                if self.max_reports is not None and len(self.submissions) >= self.max_reports:
                    return None
                now = time.monotonic()
                if now >= self._next_at:
                    self._next_at = max(self._next_at + 1.0 / self.rate, now - 1.0)
                    kind, body = self.factory.make()
                    sub = Submission(seq=len(self.submissions), kiosk="", key=f"chaos-{uuid.uuid4()}",
                                     body=body, kind=kind, first_attempt=time.time())
                    self.submissions.append(sub)
                    return sub
                wait = self._next_at - now
            time.sleep(min(wait, 0.2))

    def _loop(self, kiosk: Kiosk) -> None:
        try:
            while True:
                sub = self._take_turn()
                if sub is None:
                    return
                sub.kiosk = kiosk.name
                kiosk.send(sub, self._stop)
        finally:
            kiosk.close()

    def _watch_backlog(self) -> None:
        """Hold new reports while the pipeline is far behind, so that the rate settles at what
        the machine sustains end to end (not merely what intake can store)."""
        throttled, since = False, 0.0
        while not self._stop.is_set():
            try:
                self.backlog = self.backlog_fn()
            except Exception:
                pass  # the database may be down on purpose; keep the last figure
            if self._throttle_suspended:
                if throttled:
                    throttled = False
                    self.throttled_s += time.monotonic() - since
            elif self.backlog > self.max_backlog and not throttled:
                throttled, since = True, time.monotonic()
                self._unthrottled.clear()
            elif throttled and self.backlog < self.max_backlog // 2:
                throttled = False
                self.throttled_s += time.monotonic() - since
                with self._lock:
                    self._next_at = max(self._next_at, time.monotonic())
                self._unthrottled.set()
            time.sleep(2.0)
