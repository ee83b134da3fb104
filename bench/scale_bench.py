"""Scale-out through Redis (docs/PERFORMANCE.md, "Scale-out"): the Redis hop, edge CPU per message
against a standalone server, and the failover gap, all driven by the fan-out benchmark's C load
generator (bench/fanout/loadgen.c).

    python3 bench/scale_bench.py                  # everything, about 6 minutes
    python3 bench/scale_bench.py --quick          # 100 clients, short windows: a smoke run

One redis-server (no persistence) on loopback; the servers are `python -m session_buddy.realtime`
processes (`--max-clients 0 --log-level WARNING`, as the fan-out benchmark's ours_server.py), on
the fan-out benchmark's DB (1,000,000 rows, 200 skills, cached under bench/.data/).

1. Hop and failover, in one run: two publishers on the DB and one edge; N load-generator clients
   on the lease holder and N on the edge, one measurement window for both.  The hop of an update
   is (first arrival on the edge's clients) - (first arrival on the holder's clients), matched by
   seq: it covers the XADD, Redis, the edge's XREAD wake-up, its decode and its first frame
   written.  The last arrivals are compared too (both fan-outs complete).  Late in the window the
   holder is SIGKILLed; the failover gap is the longest time any edge client went without an
   update (the load generator's max_gap_ms), and `lost` shows whether a seq was skipped.  The run
   is made once per --hop-arrival: arrivals as the load generators read them, and as the kernel
   received them (SO_TIMESTAMPNS: when the server wrote the frame), which leaves out the time a
   load generator waited for one of the two CPUs that it shares with three servers and Redis.
   The hop run's load generators run at nice 19 (--hop-loadgen-nice): they stand in for clients
   on other machines, and at normal priority the holder's clients, reading 1,000 frames a tick,
   keep Redis and the edge from the CPU they share for milliseconds.
2. CPU per message: for N in --clients and plain and permessage-deflate clients, a fresh
   standalone server, then a fresh edge (fed by one publisher without clients), each pinned to
   CPU 0 with the load generator on CPU 1 and the publisher and Redis on CPU 1 too.  The measured
   server's CPU comes from /proc/PID/task/*/schedstat at the window's edges (run_fanout's
   sample()).  Redis' CPU is sampled the same way, first for one window with the publisher alone
   (the append's share), then in each edge window (append + one edge reading), and the size of
   one stream entry is read back from Redis: the per-tick Redis figures of docs/SCALING.md.

Prints Markdown tables and writes every raw figure to bench/.data/scale/results-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fanout"))
import run_fanout as fo  # noqa: E402  (the load generator's build, Proc, /proc sampling, summaries)

OUT = HERE / ".data" / "scale"
SERVER_CPU, OTHER_CPU = 0, 1
PREFIX = "session_buddy"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def healthz(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return json.loads(r.read())
    except Exception:  # noqa: BLE001 - not up yet, or 503 while stale
        return {}


def wait_until(pred, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.05)


@dataclass
class Bench:
    bins: dict[str, Path]
    db: Path
    shard_max: int
    redis_port: int = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"


def start_redis(bench: Bench) -> fo.Proc:
    bench.redis_port = fo.free_port()
    cmd = ["redis-server", "--port", str(bench.redis_port), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no", "--dir", str(OUT)]
    proc = fo.Proc(cmd, OTHER_CPU, None, OUT / "redis.log")
    wait_until(lambda: redis_cli(bench, "PING") == "PONG", "redis answers PING", 20)
    return proc


def redis_cli(bench: Bench, *args: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(bench.redis_port), *args], capture_output=True, text=True)
    return done.stdout.strip()


def entry_bytes(bench: Bench) -> int:
    """Bytes of the state field of the newest stream entry: what one tick puts through Redis."""
    return int(redis_cli(bench, "EVAL", "local e = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)"
                         " for i = 1, #e[1][2], 2 do if e[1][2][i] == 'd' then return #e[1][2][i + 1] end end"
                         " return 0", "1", f"{PREFIX}:stream") or 0)


def command_stats(bench: Bench) -> dict[str, dict[str, float]]:
    """Redis' own accounting per command (INFO commandstats): calls and µs of CPU per call."""
    stats = {}
    for line in redis_cli(bench, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            kv = dict(f.split("=", 1) for f in fields.split(","))
            stats[name] = {"calls": int(kv["calls"]), "usec_per_call": float(kv["usec_per_call"])}
    return stats


def serve(bench: Bench, role: str, cpu: int, interval: float) -> tuple[fo.Proc, int]:
    """A server process; returns once its /healthz says it serves (an edge: once it has state)."""
    port = fo.free_port()
    cmd = [sys.executable, "-m", "session_buddy.realtime", "--role", role, "--host", "127.0.0.1",
           "--port", str(port), "--interval", str(interval), "--max-clients", "0", "--log-level", "WARNING"]
    if role != "standalone":
        cmd += ["--redis", bench.redis_url]
    if role != "edge":
        cmd += ["--db", str(bench.db)]
    proc = fo.Proc(cmd, cpu, None, OUT / f"{role}.log")
    try:
        if role == "edge":
            wait_until(lambda: healthz(port).get("seq", 0) > 0 and not healthz(port).get("stale"),
                       "the edge has state")
        else:
            wait_until(lambda: bool(healthz(port)), f"the {role} answers /healthz")
        settle(proc)
    except Exception:
        proc.kill()
        raise
    return proc, port


def settle(proc: fo.Proc, timeout: float = 90.0) -> None:
    """Waits until the process uses under 10% of a core over a second: a server's first ticks on a
    large DB (the analytics' initial load) take seconds of CPU, which must not fall in a window."""
    deadline = time.monotonic() + timeout
    prev = fo.sample(proc.p.pid)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        cur = fo.sample(proc.p.pid)
        if cur.cpu_ns - prev.cpu_ns < 100_000_000:
            return
        prev = cur
    raise TimeoutError(f"the server still busy after {timeout:.0f} s")


def start_shards(bench: Bench, port: int, n: int, mode: str, window: float, interval: float, cpu: int,
                 label: str, source_base: int, extra: tuple[str, ...] = (), nice: int = 0) -> list[fo.Proc]:
    k = max(1, math.ceil(n / bench.shard_max))
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    shards = []
    for i, size in enumerate(sizes):
        cmd = (["nice", "-n", str(nice)] if nice else []) + [str(bench.bins["loadgen"]), "--host", "127.0.0.1", "--port", str(port), "--clients", str(size),
               "--interval", str(interval), "--duration", str(window), "--coordinated",
               "--grace", str(max(2.0, 2 * interval)), "--setup-timeout", "240", "--warmup-timeout", "30",
               "--source-base", str(source_base + i * 10), "--label", f"{label}-{i}"]
        shards.append(fo.Proc(cmd + fo.LOADGEN_FLAGS[mode] + list(extra), cpu, None, OUT / "loadgen.stderr.log"))
    return shards


def go(shards: list[fo.Proc], interval: float, window: float) -> tuple[list[dict], int, int]:
    """Waits for every shard's READY, then starts one window for all, between two ticks."""
    ready = [json.loads(s.expect("READY", 300).split(" ", 1)[1]) for s in shards]
    latest = max((r["last_tick_first_ns"] for r in ready), default=0) or time.monotonic_ns()
    start = latest + int(interval * 0.5e9)
    while start < time.monotonic_ns() + 300_000_000:
        start += int(interval * 1e9)
    end = start + int(window * 1e9)
    for s in shards:
        s.send(f"GO {start} {end}")
    return ready, start, end


def collect(shards: list[fo.Proc], window: float) -> list[dict]:
    return [json.loads(s.expect("{", window + 120)) for s in shards]


def first_last(results: list[dict]) -> dict[int, tuple[int, int]]:
    """seq -> (first, last) arrival over every connection of the shards."""
    ticks: dict[int, tuple[int, int]] = {}
    for r in results:
        for seq, first, last, _count in r["tick_list"]:
            old = ticks.get(seq)
            ticks[seq] = (first, last) if old is None else (min(old[0], first), max(old[1], last))
    return ticks


# ---- 1. hop and failover ------------------------------------------------------------------------


def hop_and_failover(bench: Bench, n: int, interval: float, hop_s: float, failover_s: float,
                     arrival: str, nice: int) -> dict[str, Any]:
    """arrival "read": when each load generator read an update; "kernel": when the kernel received
    it (loadgen --kernel-ts; on loopback, when the server wrote it).  Two load generators share
    the two CPUs with three servers and Redis here, so the read times also hold each load
    generator's wait for a CPU; the kernel times measure the servers alone."""
    extra = ("--kernel-ts",) if arrival == "kernel" else ()
    redis = start_redis(bench)
    procs: list[fo.Proc] = []
    shards: list[fo.Proc] = []
    try:
        pubs = [serve(bench, "publisher", SERVER_CPU, interval), serve(bench, "publisher", OTHER_CPU, interval)]
        procs += [p for p, _ in pubs]
        wait_until(lambda: sum(bool(healthz(port).get("holder")) for _, port in pubs) == 1, "one lease holder")
        holder = 0 if healthz(pubs[0][1]).get("holder") else 1
        edge, edge_port = serve(bench, "edge", OTHER_CPU, interval)
        procs.append(edge)
        # Each server's clients on the other CPU, as in the fan-out benchmark.
        holder_cpu = SERVER_CPU if holder == 0 else OTHER_CPU
        window = hop_s + failover_s
        on_holder = start_shards(bench, pubs[holder][1], n, "plain", window, interval, 1 - holder_cpu,
                                 "holder", 1, extra, nice)
        on_edge = start_shards(bench, edge_port, n, "plain", window, interval, SERVER_CPU, "edge", 101, extra, nice)
        shards = on_holder + on_edge
        _ready, start, end = go(shards, interval, window)
        time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9) + hop_s)
        killed = time.monotonic_ns()
        pubs[holder][0].p.send_signal(signal.SIGKILL)
        holder_results = collect(on_holder, window)
        edge_results = collect(on_edge, window)
        takeover = healthz(pubs[1 - holder][1]).get("holder", False)
    finally:
        for s in shards:
            s.kill()
        for p in procs:
            p.stop()
        redis.stop()
    pub_ticks, edge_ticks = first_last(holder_results), first_last(edge_results)
    both = [s for s in edge_ticks if s in pub_ticks and start <= pub_ticks[s][0] < killed]
    hop_first = [(edge_ticks[s][0] - pub_ticks[s][0]) / 1e6 for s in both]
    hop_last = [(edge_ticks[s][1] - pub_ticks[s][1]) / 1e6 for s in both]
    after = sorted(t[0] for s, t in edge_ticks.items() if start <= t[0] < end)
    return {
        "clients": n, "interval": interval, "arrival": arrival, "loadgen_nice": nice, "matched": len(both),
        "hop_first_p50_ms": fo.pct(hop_first, 50), "hop_first_p99_ms": fo.pct(hop_first, 99),
        "hop_first_max_ms": max(hop_first, default=None),
        "hop_last_p50_ms": fo.pct(hop_last, 50), "hop_last_p99_ms": fo.pct(hop_last, 99),
        "failover_gap_ms": max(r["max_gap_ms"] for r in edge_results),
        "failover_gap_first_ms": max((b - a for a, b in zip(after, after[1:])), default=0) / 1e6,
        "edge_lost": sum(r["lost"] for r in edge_results),
        "edge_dropped": sum(r["dropped"] for r in edge_results),
        "edge_failed": sum(r["failed"] for r in edge_results),
        "edge_seqs": [min(edge_ticks, default=0), max(edge_ticks, default=0)],
        "standby_took_over": takeover,
    }


# ---- 2. CPU per message: edge against standalone -------------------------------------------------


def measure(bench: Bench, srv: fo.Proc, port: int, role: str, n: int, mode: str, window: float,
            interval: float, redis: fo.Proc | None) -> dict[str, Any]:
    time.sleep(interval * 1.5)  # a tick or so with nobody connected
    idle = fo.sample(srv.p.pid)
    shards = start_shards(bench, port, n, mode, window, interval, OTHER_CPU, f"{role}-{n}", 1)
    try:
        ready, start, end = go(shards, interval, window)
        time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
        u0, r0 = fo.sample(srv.p.pid), fo.sample(redis.p.pid) if redis else None
        time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
        u1, r1 = fo.sample(srv.p.pid), fo.sample(redis.p.pid) if redis else None
        results = collect(shards, window)
    finally:
        for s in shards:
            s.kill()
    row = fo.summarize(role, n, window, ready, results, idle, u0, u1, start, end, srv.p.poll() is None)
    row["mode"] = mode
    row["wire_bytes_per_msg"] = row["bytes"] / row["messages"] if row["messages"] else None
    if r0 and r1:
        row["redis_cpu_us_per_tick"] = (r1.cpu_ns - r0.cpu_ns) / 1e3 / max(1, row["ticks"])
    return row


def redis_baseline(redis: fo.Proc, pub: fo.Proc, pub_port: int, window: float, interval: float) -> dict[str, Any]:
    """Redis' and the publisher's CPU per tick with the publisher appending, no client and no edge."""
    time.sleep(interval * 2)
    seq0, r0, p0 = healthz(pub_port).get("seq", 0), fo.sample(redis.p.pid), fo.sample(pub.p.pid)
    time.sleep(window)
    seq1, r1, p1 = healthz(pub_port).get("seq", 0), fo.sample(redis.p.pid), fo.sample(pub.p.pid)
    ticks = max(1, seq1 - seq0)
    return {"server": "redis-no-edge", "clients": 0, "mode": "-", "ticks": seq1 - seq0,
            "redis_cpu_us_per_tick": (r1.cpu_ns - r0.cpu_ns) / 1e3 / ticks,
            "publisher_cpu_us_per_tick": (p1.cpu_ns - p0.cpu_ns) / 1e3 / ticks, "publisher_rss_kib": p1.rss_kib}


def cpu_runs(bench: Bench, ns: list[int], modes: list[str], window: float, interval: float) -> list[dict]:
    rows: list[dict[str, Any]] = []
    for n in ns:
        for mode in modes:
            log(f"standalone N={n:,} {mode}")
            srv, port = serve(bench, "standalone", SERVER_CPU, interval)
            try:
                rows.append(measure(bench, srv, port, "standalone", n, mode, window, interval, None))
            finally:
                srv.stop()
    redis = start_redis(bench)
    pub, pub_port = serve(bench, "publisher", OTHER_CPU, interval)
    try:
        rows.append(redis_baseline(redis, pub, pub_port, window, interval))
        for n in ns:
            for mode in modes:
                log(f"edge N={n:,} {mode}")
                srv, port = serve(bench, "edge", SERVER_CPU, interval)
                try:
                    row = measure(bench, srv, port, "edge", n, mode, window, interval, redis)
                finally:
                    srv.stop()
                row["entry_bytes"] = entry_bytes(bench)
                rows.append(row)
        rows.append({"server": "redis-commandstats", "clients": 0, "mode": "-", "stats": command_stats(bench)})
    finally:
        pub.stop()
        redis.stop()
    return rows


# ---- output ---------------------------------------------------------------------------------------


def find(rows: list[dict], role: str, n: int, mode: str) -> dict | None:
    return next((r for r in rows if r["server"] == role and r["clients"] == n and r["mode"] == mode), None)


def cpu_table(rows: list[dict]) -> str:
    out = ["| clients | mode | standalone CPU/msg (µs) | edge CPU/msg (µs) | edge / standalone | edge CPU % "
           "| edge RSS/conn (KiB) | wire bytes/update | edge spread p99 (ms) | lost | dropped | failed "
           "| Redis CPU/tick (µs) | stream entry (bytes) |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in (r for r in rows if r["server"] == "edge"):
        base = find(rows, "standalone", r["clients"], r["mode"])
        ratio = r["cpu_us_per_msg"] / base["cpu_us_per_msg"] if base and base["cpu_us_per_msg"] and \
            r["cpu_us_per_msg"] else None
        out.append(
            f"| {r['clients']:,} | {r['mode']} | {fo.fmt(base and base['cpu_us_per_msg'], '.2f')} "
            f"| {fo.fmt(r['cpu_us_per_msg'], '.2f')} | {fo.fmt(ratio, '.2f')} | {r['cpu_util'] * 100:.1f} "
            f"| {fo.fmt(r['rss_per_conn_kib'], '.2f')} | {fo.fmt(r['wire_bytes_per_msg'], '.0f')} "
            f"| {fo.fmt(r['spread_p99_ms'], '.2f')} | {r['lost'] + (base or {}).get('lost', 0):,} "
            f"| {r['dropped'] + (base or {}).get('dropped', 0):,} | {r['failed'] + (base or {}).get('failed', 0):,} "
            f"| {fo.fmt(r.get('redis_cpu_us_per_tick'), '.0f')} | {r.get('entry_bytes', 0):,} |")
    return "\n".join(out)


def hop_lines(hops: list[dict[str, Any]]) -> list[str]:
    out = [
        "| arrival time | clients (each side) | interval (s) | updates matched | hop p50, first arrival (ms) "
        "| hop p99, first (ms) | hop max, first (ms) | hop p50, last arrival (ms) | hop p99, last (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in hops:
        out.append(
            f"| {ARRIVALS[h['arrival']]} | {h['clients']:,} | {h['interval']} | {h['matched']} "
            f"| {fo.fmt(h['hop_first_p50_ms'], '.2f')} | {fo.fmt(h['hop_first_p99_ms'], '.2f')} "
            f"| {fo.fmt(h['hop_first_max_ms'], '.2f')} | {fo.fmt(h['hop_last_p50_ms'], '.2f')} "
            f"| {fo.fmt(h['hop_last_p99_ms'], '.2f')} |")
    out.append("")
    for h in hops:
        out.append(
            f"Failover ({ARRIVALS[h['arrival']]}; SIGKILL of the holder): longest gap on an edge client "
            f"{h['failover_gap_ms']:.0f} ms (between first arrivals {h['failover_gap_first_ms']:.0f} ms), target <= "
            f"{3000 + h['interval'] * 1000:.0f} ms; standby took over: {h['standby_took_over']}; edge clients: "
            f"{h['edge_lost']} seqs lost, {h['edge_dropped']} dropped, {h['edge_failed']} failed; "
            f"seqs {h['edge_seqs'][0]}..{h['edge_seqs'][1]}")
    return out


ARRIVALS = {"read": "read by the client", "kernel": "received by the kernel"}


def plan(rows: list[dict], interval: float, total: int = 1_000_000) -> list[str]:
    """The 1,000,000-client figures of docs/SCALING.md, derived from this run's measured ones."""
    edges_rows = [r for r in rows if r["server"] == "edge" and r["lost"] == 0 and r["dropped"] == 0
                  and r["failed"] == 0 and r["established"] == r["clients"]]
    if not edges_rows:
        return ["no clean edge run to plan from"]
    per_edge = max(r["clients"] for r in edges_rows)
    edges = math.ceil(total / per_edge)
    base = find(rows, "redis-no-edge", 0, "-")
    stats = (find(rows, "redis-commandstats", 0, "-") or {}).get("stats", {})
    out = [f"Plan for {total:,} clients at one update per {interval} s, from the edge runs at {per_edge:,} "
           f"clients (measured) -> {edges} edges (derived: {total:,} / {per_edge:,})"]
    for r in (r for r in edges_rows if r["clients"] == per_edge):
        cores = edges * r["cpu_util"]
        out.append(
            f"- {r['mode']} clients: one edge {r['cpu_util'] * 100:.1f}% of a core, RSS {r['rss_kib'] / 1024:.0f} MiB, "
            f"{r['wire_bytes_per_msg']:.0f} B/update, {r['connect_rate']:,.0f} connects/s (measured) -> "
            f"{cores:.1f} cores, {edges * r['rss_kib'] / 1024 / 1024:.1f} GiB, "
            f"{total * r['wire_bytes_per_msg'] * 8 / interval / 1e9:.2f} Gbit/s to clients in all, "
            f"{per_edge * r['wire_bytes_per_msg'] * 8 / interval / 1e6:.0f} Mbit/s per edge (derived)")
    entry = max((r.get("entry_bytes", 0) for r in edges_rows), default=0)
    xread = stats.get("xread", {}).get("usec_per_call")
    scripts, appends = stats.get("eval"), stats.get("xadd", {}).get("calls")
    if xread and scripts and appends:
        # Every EVAL (the appends and the lease renewals between them) charged to the ticks.
        append = scripts["calls"] * scripts["usec_per_call"] / appends
        out.append(f"- Redis per tick: lease + append scripts {append:.0f} µs + {edges} XREADs x {xread:.0f} µs "
                   f"(measured per call) = {append + edges * xread:,.0f} µs of Redis CPU per tick (derived); "
                   f"{entry:,} B in, {edges} x {entry:,} = {edges * entry / 1e6:.2f} MB out per tick, "
                   f"{edges * entry * 8 / interval / 1e6:.0f} Mbit/s (derived)")
    if base:
        out.append(f"- Redis process with the publisher alone: {base['redis_cpu_us_per_tick']:.0f} µs CPU per tick "
                   f"(measured: includes its own timers); publisher: {base['publisher_cpu_us_per_tick']:.0f} µs "
                   f"CPU per tick, RSS {base['publisher_rss_kib'] / 1024:.0f} MiB (measured, this DB)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 clients, 5 s windows: a smoke run")
    ap.add_argument("--hop-clients", type=int, default=1000, help="clients on the holder and on the edge, each")
    ap.add_argument("--hop-interval", type=float, default=0.1, help="tick interval of the hop/failover run, s")
    ap.add_argument("--hop-seconds", type=float, default=30.0, help="hop part of the window, s")
    ap.add_argument("--failover-seconds", type=float, default=10.0, help="window left after the SIGKILL, s")
    ap.add_argument("--hop-loadgen-nice", type=int, default=19,
                    help="nice value of the hop run's load generators (19: they take a CPU only when no "
                         "server or Redis wants it, as clients on other machines would)")
    ap.add_argument("--hop-arrival", default="read,kernel",
                    help="arrival times of the hop runs, one run each: read (when the load generator read "
                         "an update), kernel (when the kernel received it: when the server wrote it)")
    ap.add_argument("--clients", default="1000,10000", help="N values of the CPU runs")
    ap.add_argument("--modes", default="plain,deflate", help="clients of the CPU runs: " + ",".join(fo.MODES))
    ap.add_argument("--window", type=float, default=10.0, help="window of each CPU run, s")
    ap.add_argument("--interval", type=float, default=1.0, help="tick interval of the CPU runs, s")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: hop, cpu")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--skills", type=int, default=200)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    if not set(args.hop_arrival.split(",")) <= set(ARRIVALS):
        ap.error("--hop-arrival takes read, kernel")
    if args.quick:
        args.hop_clients, args.hop_seconds, args.failover_seconds = 100, 5.0, 8.0
        args.clients, args.window = "100", 5.0
    ns = [int(x) for x in args.clients.split(",") if x]
    modes = [m for m in args.modes.split(",") if m]
    skip = set(args.skip.split(","))

    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    nofile = fo.raise_nofile(max(ns + [args.hop_clients]) * 2 + 1024)
    bins = fo.build_c()
    fo.ensure_extension()
    bench = Bench(bins=bins, db=fo.prepare_db(args.rows, args.skills, args.days),
                  shard_max=min(10000, nofile - 256))
    raw: dict[str, Any] = {"argv": sys.argv, "nofile": nofile}
    try:
        if "hop" not in skip:
            raw["hop"] = []
            for arrival in [a for a in args.hop_arrival.split(",") if a]:
                log(f"hop and failover: {args.hop_clients:,} clients a side, interval {args.hop_interval} s, "
                    f"arrival {arrival}")
                raw["hop"].append(hop_and_failover(bench, args.hop_clients, args.hop_interval, args.hop_seconds,
                                                   args.failover_seconds, arrival, args.hop_loadgen_nice))
        if "cpu" not in skip:
            raw["cpu"] = cpu_runs(bench, ns, modes, args.window, args.interval)
    finally:
        path = OUT / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(raw, indent=1))
        log(f"raw results: {path}")
    if "hop" in raw:
        print("\nRedis hop (edge minus holder, per seq) and failover\n")
        print("\n".join(hop_lines(raw["hop"])))
    if "cpu" in raw:
        print(f"\nCPU per message, edge against standalone (interval {args.interval} s, window "
              f"{args.window:.0f} s, server on CPU {SERVER_CPU})\n")
        print(cpu_table(raw["cpu"]))
        base = find(raw["cpu"], "redis-no-edge", 0, "-")
        if base:
            print(f"\nRedis CPU per tick with the publisher alone (no edge reading): "
                  f"{base['redis_cpu_us_per_tick']:.0f} µs over {base['ticks']} ticks")
        stats = find(raw["cpu"], "redis-commandstats", 0, "-")
        if stats:
            print("Redis INFO commandstats over the CPU runs: " + ", ".join(
                f"{name} {v['calls']:,} calls, {v['usec_per_call']:.1f} µs/call" for name, v in stats["stats"].items()))
        print("\n" + "\n".join(plan(raw["cpu"], args.interval)))
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
