"""Synthetic skill traffic for `--demo`: realistic invocations, then an injected completion drop.

Why the drop is detected within about two minutes of starting (the detection rule of docs/realtime/WEBSOCKET_SERVER.md, "Anomaly detection", threshold 2):
- The backfill gives the victim ("pytest-run", completion 0.95) 69 baseline invocations in
  [now-24h, now-1h), 3 of them failed: baseline mean 0.957, sample std ~0.20, so the alarm line is
  0.957 - 2 x 0.20 ~ 0.55. Every skill's history holds at least 2 failures, so no other skill's
  ordinary failure trips the detector's std floor.
- Live, it runs every ~2 s for the first minute (~30 rows, ~28.5 completed), then every ~1 s with
  95 % failing: after k seconds the current mean is (28.5 + 0.05 k) / (30 + k), below 0.55 once
  k >= ~27 s. So the performance_drop appears about 90 s after start.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from contextlib import closing
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from session_buddy.storage import SkillsStorage

__all__ = ["DemoTraffic", "SkillProfile", "PROFILES"]

logger = logging.getLogger("session_buddy.realtime.demo")


@dataclass(frozen=True)
class SkillProfile:
    name: str
    per_minute: float          # live invocations per minute
    completion: float          # probability an invocation completes
    median_seconds: float      # typical duration of a completed invocation
    errors: tuple[str, ...] = ("timeout", "validation_error")


PROFILES = (
    SkillProfile("pytest-run", 30, 0.95, 6.0, ("test_failure", "timeout")),
    SkillProfile("ruff-check", 40, 0.98, 0.8, ("lint_error",)),
    SkillProfile("mypy", 12, 0.85, 9.0, ("type_error",)),
    SkillProfile("black", 20, 0.99, 0.5),
    SkillProfile("git-commit", 8, 0.93, 1.2, ("hook_failed",)),
    SkillProfile("docs-build", 4, 0.80, 25.0, ("broken_link",)),
    SkillProfile("crackerjack-lint", 6, 0.88, 14.0),
    SkillProfile("semantic-search", 15, 0.97, 0.3),
)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DemoTraffic:
    """Writes invocations from a background thread until stop(); never blocks the event loop."""

    def __init__(self, db_path: str | Path, *, drop_after: float = 60.0, victim: str = "pytest-run",
                 seed: int | None = None) -> None:
        self.db_path = Path(db_path)
        self.drop_after = drop_after
        self.victim = victim
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="session-buddy-demo", daemon=True)
        self._thread.start()
        logger.info("demo traffic started; %s starts failing after %.0f s", self.victim, self.drop_after)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _invocation(self, storage: SkillsStorage, p: SkillProfile, when: datetime, completion: float) -> None:
        completed = self._rng.random() < completion
        # Tight durations: with only a few current values, wide ones would trip pattern_shift by chance.
        duration = self._rng.lognormvariate(0, 0.1) * p.median_seconds if completed else None
        storage.store_invocation(
            p.name, _iso(when), f"demo-{uuid.UUID(int=self._rng.getrandbits(128)).hex[:12]}",
            workflow_path=self._rng.choice(("quick", "comprehensive")), completed=completed,
            duration_seconds=duration, error_type=None if completed else self._rng.choice(p.errors),
        )
        self.written += 1

    def _backfill(self, storage: SkillsStorage, now: datetime) -> None:
        """Give the detector a baseline: history in [now-24h, now-1h), never in the last hour."""
        start, end = now - timedelta(hours=24), now - timedelta(hours=1)
        with closing(sqlite3.connect(storage.db_path)) as conn:
            have = conn.execute(
                "SELECT COUNT(*) FROM skill_invocation WHERE invoked_at >= ? AND invoked_at < ?",
                (_iso(start), _iso(end)),
            ).fetchone()[0]
        if have >= 200:
            return
        span = (end - start).total_seconds()
        for p in PROFILES:
            n = max(30, int(p.per_minute * 2.3))
            # Exactly the profile's failure share, and never zero failures: a flawless history has
            # a std of 0, and the std floor would then flag the first ordinary failure as an anomaly.
            failures = set(self._rng.sample(range(n), max(2, round(n * (1 - p.completion)))))
            for i in range(n):
                when = start + timedelta(seconds=self._rng.uniform(0, span))
                self._invocation(storage, p, when, 0.0 if i in failures else 1.0)
        logger.info("demo backfilled %d invocations of history", self.written)

    def _run(self) -> None:
        try:
            with SkillsStorage(self.db_path) as storage:
                started = time.monotonic()
                self._backfill(storage, datetime.now(timezone.utc))
                dropped = False
                step = 0.25
                while not self._stop.wait(step):
                    elapsed = time.monotonic() - started
                    if not dropped and elapsed >= self.drop_after:
                        dropped = True
                        logger.info("demo: injecting a completion drop into %s", self.victim)
                    for p in PROFILES:
                        victim = p.name == self.victim
                        rate = p.per_minute * (2 if victim and dropped else 1) / 60.0
                        if self._rng.random() < rate * step:
                            completion = 0.05 if victim and dropped else p.completion
                            self._invocation(storage, p, datetime.now(timezone.utc), completion)
        except Exception:  # the demo must never take the server down with it
            logger.exception("demo traffic stopped by an error")
