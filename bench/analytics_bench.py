"""Per-tick snapshot cost, startup load and /metrics scrape cost: the C analytics engine against the
pure-Python server's SQL.

Usage: .venv/bin/python bench/analytics_bench.py [--rows 1000000] [--skills 200] [--days 30] [--ticks 100]

Both implementations run in the same process on the same DB, with 50 new rows written before
every tick. The DB is built once and cached under bench/.data/. After the ticks, /metrics is
scraped --scrapes times (its text carries session-buddy's per-skill, per-phase series too).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sqlite3
import statistics
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from session_buddy.realtime import RealTimeMetricsServer  # noqa: E402
from session_buddy.storage import MigrationManager  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"

# What the pure-Python server runs every tick (seed doc 000: top skills, then anomaly SQL),
# extended to the same figures our snapshot carries: 24 h / 1 h windows and the z-score inputs.
BASELINE_TOP = "SELECT * FROM skill_metrics ORDER BY total_invocations DESC LIMIT 10"
# Uniform ISO text in this DB, so plain text comparisons use the invoked_at index: the fastest
# form of this SQL, not a strawman.
BASELINE_WINDOWS = """
SELECT skill_name, COUNT(*), SUM(completed), SUM(invoked_at >= :h1),
       AVG(CASE WHEN completed THEN duration_seconds END)
FROM skill_invocation WHERE invoked_at >= :d24 AND invoked_at <= :now
GROUP BY skill_name"""
BASELINE_ZSCORE = """
WITH base AS (
  SELECT skill_name, AVG(completed) AS m, COUNT(*) AS n,
         (SUM(completed * completed) - SUM(completed) * SUM(completed) * 1.0 / COUNT(*)) AS ss
  FROM skill_invocation WHERE invoked_at >= :d24 AND invoked_at < :h1 GROUP BY skill_name),
cur AS (
  SELECT skill_name, AVG(completed) AS m, COUNT(*) AS n FROM skill_invocation
  WHERE invoked_at >= :h1 AND invoked_at <= :now GROUP BY skill_name)
SELECT base.skill_name, (cur.m - base.m) / MAX(sqrt(base.ss / (base.n - 1)), 0.01) AS z
FROM base JOIN cur USING (skill_name)
WHERE base.n >= 5 AND cur.n >= 2"""


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_db(rows: int, skills: int, days: int) -> Path:
    DATA.mkdir(exist_ok=True)
    cached = DATA / f"skills-{rows}-{skills}-{days}.db"
    if not cached.exists():
        tmp = cached.with_suffix(".building")
        tmp.unlink(missing_ok=True)
        MigrationManager(tmp).migrate()
        rng = random.Random(42)
        now = datetime.now(timezone.utc)
        names = [f"skill-{i:03d}" for i in range(skills)]
        started = time.perf_counter()
        with sqlite3.connect(tmp) as conn:
            conn.execute("PRAGMA synchronous=OFF")
            batch = []
            for i in range(rows):
                when = now - timedelta(seconds=rng.uniform(0, days * 86400))
                done = rng.random() < 0.9
                batch.append((rng.choice(names), iso(when), f"s{i % 5000}", done,
                              rng.uniform(0.1, 20) if done else None))
                if len(batch) == 50000:
                    conn.executemany("INSERT INTO skill_invocation (skill_name, invoked_at, session_id,"
                                     " completed, duration_seconds) VALUES (?, ?, ?, ?, ?)", batch)
                    batch.clear()
            if batch:
                conn.executemany("INSERT INTO skill_invocation (skill_name, invoked_at, session_id,"
                                 " completed, duration_seconds) VALUES (?, ?, ?, ?, ?)", batch)
        tmp.rename(cached)
        print(f"built {cached.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    work = DATA / "work.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(work) + suffix).unlink(missing_ok=True)
    shutil.copy(cached, work)
    return work


def write_rows(conn: sqlite3.Connection, rng: random.Random, skills: int, n: int = 50) -> None:
    now = datetime.now(timezone.utc)
    conn.executemany(
        "INSERT INTO skill_invocation (skill_name, invoked_at, session_id, completed, duration_seconds)"
        " VALUES (?, ?, 'bench', ?, ?)",
        [(f"skill-{rng.randrange(skills):03d}", iso(now), rng.random() < 0.9, rng.uniform(0.1, 20))
         for _ in range(n)],
    )
    conn.commit()


def baseline(db: Path, ticks: int, skills: int) -> tuple[float, list[float]]:
    rng = random.Random(7)
    reader = sqlite3.connect(db)
    writer = sqlite3.connect(db)
    durations = []
    for _ in range(ticks + 1):
        write_rows(writer, rng, skills)
        now = datetime.now(timezone.utc)
        params = {"d24": iso(now - timedelta(hours=24)), "h1": iso(now - timedelta(hours=1)), "now": iso(now)}
        started = time.perf_counter()
        reader.execute(BASELINE_TOP).fetchall()
        reader.execute(BASELINE_WINDOWS, params).fetchall()
        reader.execute(BASELINE_ZSCORE, params).fetchall()
        durations.append(time.perf_counter() - started)
    reader.close()
    writer.close()
    return durations[0], durations[1:]


async def scrape_times(url: str, scrapes: int) -> tuple[list[float], int]:
    """Wall time of each GET /metrics (the scrape is served by the service thread) and the
    number of lines of the last one."""
    loop = asyncio.get_running_loop()
    durations, lines = [], 0
    for _ in range(scrapes):
        started = time.perf_counter()
        body = await loop.run_in_executor(None, lambda: urllib.request.urlopen(url, timeout=10).read())
        durations.append(time.perf_counter() - started)
        lines = body.count(b"\n")
    return durations, lines


async def ours(db: Path, ticks: int, skills: int, scrapes: int) -> tuple[float, list[float], list[float], int]:
    rng = random.Random(7)
    writer = sqlite3.connect(db)
    first = asyncio.get_running_loop().create_future()
    server = RealTimeMetricsServer(port=0, db_path=db, update_interval=3600, top_n=10)
    server.register_metrics_subscriber(lambda payload: first.done() or first.set_result(None))
    started = time.perf_counter()
    await server.start()
    await first
    startup = time.perf_counter() - started
    for _ in range(ticks):
        write_rows(writer, rng, skills)
        await server.broadcast_metrics()
    stats = server.tick_stats()
    scrapes_s, lines = await scrape_times(f"http://127.0.0.1:{server.port}/metrics", scrapes)
    await server.stop()
    writer.close()
    return startup, [us / 1e6 for us in stats["durations_us"][1:]], scrapes_s, lines


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()

    db = build_db(args.rows, args.skills, args.days)
    a_start, a_ticks, a_scrapes, lines = asyncio.run(ours(db, args.ticks, args.skills, args.scrapes))
    b_start, b_ticks = baseline(db, args.ticks, args.skills)

    print(f"{args.rows:,} invocations, {args.skills} skills over {args.days} days; "
          f"{args.ticks} ticks, 50 new rows before each\n")
    print("| implementation | startup load (s) | tick p50 (ms) | tick p99 (ms) |")
    print("|---|---:|---:|---:|")
    print(f"| (a) C engine (this package) | {a_start:.2f} | {pct(a_ticks, 50) * 1e3:.3f} | {pct(a_ticks, 99) * 1e3:.3f} |")
    print(f"| (b) pure-Python server's SQL | {b_start:.2f} | {pct(b_ticks, 50) * 1e3:.1f} | {pct(b_ticks, 99) * 1e3:.1f} |")
    print(f"| ratio (b)/(a) | | {pct(b_ticks, 50) / pct(a_ticks, 50):.0f}x | {pct(b_ticks, 99) / pct(a_ticks, 99):.0f}x |")
    print(f"\nmedian ticks: (a) {statistics.median(a_ticks) * 1e3:.3f} ms, (b) {statistics.median(b_ticks) * 1e3:.1f} ms")
    print(f"/metrics scrape ({lines:,} lines, {args.scrapes} scrapes): p50 {pct(a_scrapes, 50) * 1e3:.2f} ms, "
          f"p99 {pct(a_scrapes, 99) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
