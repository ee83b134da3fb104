"""Fan-out benchmark: our C server against the pure-Python original, Node `ws` and the syscall floor.

    python3 bench/fanout/run_fanout.py            # full run (about 15 minutes)
    python3 bench/fanout/run_fanout.py --quick    # N = 100 and 1,000, short windows, no 60 s hold

Every server runs twice per N, with plain clients and with permessage-deflate clients (the
load generator's --deflate: it offers client_no_context_takeover and server_no_context_takeover
and inflates every update), since every real client (browsers, `websockets`, Node `ws`)
offers compression.  The floor sends deflate clients one frame compressed once per tick.
Ours also runs with GraphQL clients right after its plain ones at each N (issue 18; --no-graphql
skips them): graphql-transport-ws, one subscription each selecting every field of a
metrics_update, so both rows carry the same data.

    python3 bench/fanout/run_fanout.py --servers ours --modes plain --clients 1000,10000 --hold 0
                                                  # ours plain vs GraphQL only, and both GIL runs

    python3 bench/fanout/run_fanout.py --servers ours,floor --clients 10000 --modes plain,deflate \
        --no-graphql --hold 0 --gil-busy 0 --repeat 5
                                                  # ours against the floor, five rounds

One command builds the C programs (gcc -O2), prepares the skills DB (analytics_bench's builder,
cached under bench/.data/), captures one real metrics_update from our server (the bytes the
floor and Node send), then runs the main table: at each N and kind of client the servers take
turns (so the rows a ratio compares are neighbours in time; this machine's load drifts over
minutes), --repeat times over, with a fresh server process per run.  With --repeat the ratios of
ours to the floor are printed per round and as their median, with ours' CPU per message split
by thread (sb-service: the lws loop and the fan-out; sb-db: the snapshots; python: the host).
Each run:

1. starts it pinned to CPU 0 and waits until it is ready and has built a first snapshot;
   its VmRSS then is the idle baseline;
2. starts the load generator (loadgen.c) pinned to CPU 1, split into shards of at most
   SHARD_MAX connections (one process may hold at most RLIMIT_NOFILE descriptors), each shard
   on its own 127.0.0.x source address;
3. once every shard is connected and has seen an update, picks one measurement window that
   starts half an interval after a tick (between ticks) and tells every shard;
4. samples the server's CPU time (/proc/PID/task/*/schedstat, in ns; /proc/PID/stat
   utime+stime kept as a cross-check) and VmRSS at the window's edges;
5. merges the shards' per-seq arrival times: spread = last arrival - first arrival per tick.

Then the largest N each server holds for 60 s with each kind of client (descending ladder, first
success wins) and the
GIL benchmark (a main thread busy in pure Python for 5 s inside our server's process, with plain
and with GraphQL clients, and inside the pure-Python server's).  Prints Markdown tables and
writes every raw figure to bench/.data/fanout/results-<time>.json.  All traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
ROOT = BENCH.parent
OUT = BENCH / ".data" / "fanout"
sys.path.insert(0, str(BENCH))

SERVER_CPU = 0
LOADGEN_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")
NODE_PATH = "/usr/share/nodejs"
SERVERS = ("ours", "ours-poll", "python", "node", "floor")
DEFAULT_SERVERS = ("ours", "python", "node", "floor")  # ours-poll: an A/B of the event loop, on request
# The load generator's clients: no extension, or permessage-deflate asking for
# server_no_context_takeover (one inflater per shard, so 19,900 fit), or on request
# "deflate-takeover": the offer browsers make, which lets Node and pure-Python keep a compressor
# with its history per client (smaller frames, more memory) and costs the shard an inflater each.
MODES = ("plain", "deflate")
LOADGEN_FLAGS = {"plain": [], "deflate": ["--deflate"], "deflate-takeover": ["--deflate-takeover"],
                 "graphql": ["--graphql"]}
LABELS = {
    "ours": "ours (C ext, lws)",
    "ours-poll": "ours on lws's poll(2) loop",
    "python": "pure-Python (websockets)",
    "node": "Node ws",
    "floor": "floor (C, send() loop)",
    "ours-graphql": "ours (C ext, lws), GraphQL clients",  # a GIL row: ours with graphql clients
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- build and data ----------------------------------------------------------------------------


def build_c() -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    bins = {}
    for name in ("loadgen", "floor_server"):
        out = OUT / name
        cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(out), str(HERE / f"{name}.c"), "-lcrypto", "-lz"]
        subprocess.run(cmd, check=True)
        bins[name] = out
    return bins


def ensure_extension() -> None:
    probe = [sys.executable, "-c", "import session_buddy.realtime._core"]
    if subprocess.run(probe, cwd=ROOT, capture_output=True).returncode != 0:
        log("building the extension in place (python3 setup.py -q build_ext --inplace)")
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)


def prepare_db(rows: int, skills: int, days: int) -> Path:
    from analytics_bench import build_db

    work = build_db(rows, skills, days)  # the cached DB, copied fresh to bench/.data/work.db
    db = OUT / "fanout.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.move(str(work), db)
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nofile_hard() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def raise_nofile(want: int) -> int:
    """Raise RLIMIT_NOFILE as far as allowed (needs CAP_SYS_RESOURCE beyond the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        return want
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard


# ---- processes -----------------------------------------------------------------------------------


def _pinned(cpu: int):
    def setup() -> None:
        os.sched_setaffinity(0, {cpu})
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return setup


class Proc:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, cmd: list[str], cpu: int, env: dict[str, str] | None = None,
                 stderr_path: Path | None = None) -> None:
        self.stderr_file = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.stderr_file, preexec_fn=_pinned(cpu), env=env,
                                  cwd=ROOT, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with prefix (other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix!r} line within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"process exited (status {self.p.wait()}) before {prefix!r}")
            if line.startswith(prefix):
                return line

    def send(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self, timeout: float = 10.0) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        if self.stderr_file is not subprocess.DEVNULL:
            self.stderr_file.close()

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if self.stderr_file is not subprocess.DEVNULL:
            self.stderr_file.close()


@dataclass
class Usage:
    cpu_ns: int
    cpu_ticks: int
    rss_kib: int
    thread_ns: dict[str, int] = field(default_factory=dict)  # CPU by thread name (comm)


def sample(pid: int) -> Usage:
    cpu_ns = 0
    thread_ns: dict[str, int] = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                name = f.read().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just exited
        cpu_ns += ns
        thread_ns[name] = thread_ns.get(name, 0) + ns
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Usage(cpu_ns, ticks, rss, thread_ns)


def server_cmd(kind: str, port: int, ctx: "Context") -> tuple[list[str], dict[str, str] | None]:
    iv = str(ctx.interval)
    if kind in ("ours", "ours-poll"):
        # ours-poll: the same server on lws's own poll(2) loop instead of libev, an A/B of the two
        env = dict(os.environ, SESSION_BUDDY_EVENT_LOOP="poll" if kind == "ours-poll" else "libev")
        return [sys.executable, str(HERE / "ours_server.py"), "--host", "127.0.0.1", "--port", str(port),
                "--db", str(ctx.db), "--interval", iv], env
    if kind in ("python", "python-broadcast"):
        cmd = [sys.executable, str(HERE / "baseline_server.py"), "--host", "127.0.0.1", "--port", str(port),
               "--db", str(ctx.db), "--interval", iv]
        return cmd + (["--broadcast"] if kind == "python-broadcast" else []), None
    if kind == "node":
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        return ["node", str(HERE / "node_server.js"), "--host", "127.0.0.1", "--port", str(port),
                "--snapshot", str(ctx.snapshot), "--interval", iv], env
    if kind == "floor":
        return [str(ctx.bins["floor_server"]), "--host", "127.0.0.1", "--port", str(port),
                "--snapshot", str(ctx.snapshot), "--interval", iv, "--max-fds", str(ctx.nofile)], None
    raise ValueError(kind)


@dataclass
class Context:
    bins: dict[str, Path]
    db: Path
    snapshot: Path
    interval: float
    nofile: int
    shard_max: int
    kernel_ts: bool = False   # arrivals stamped by the kernel (loadgen --kernel-ts)
    results: list[dict[str, Any]] = field(default_factory=list)


def start_server(kind: str, ctx: Context) -> tuple[Proc, int]:
    port = free_port()
    cmd, env = server_cmd(kind, port, ctx)
    srv = Proc(cmd, SERVER_CPU, env, OUT / f"{kind}.stderr.log")
    try:
        srv.expect("LISTENING", 60)
    except Exception:
        srv.kill()
        raise
    return srv, port


# ---- one measured run --------------------------------------------------------------------------


def run_load(kind: str, n: int, window: float, ctx: Context, *, mode: str = "plain", busy: float = 0.0,
             busy_at: float = 2.0, abort_on_fail: bool = False, setup_timeout: float = 240.0,
             timeline: Path | None = None) -> dict[str, Any]:
    """Start a fresh server, drive it with n clients of the given mode, measure one window; returns
    the figures.  Each shard writes its arrivals to <timeline>-<shard>.txt (kept when timeline is
    given, else a scratch file), from which the stall-free spreads are computed."""
    srv, port = start_server(kind, ctx)
    shards: list[Proc] = []
    try:
        time.sleep(ctx.interval * 1.5)  # a tick or so with nobody connected
        idle = sample(srv.p.pid)
        k = max(1, math.ceil(n / ctx.shard_max))
        # GraphQL subscribes are validated one by one on the server's asyncio thread first
        warmup = 120 if mode == "graphql" else 30
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        for i, size in enumerate(sizes):
            cmd = [str(ctx.bins["loadgen"]), "--host", "127.0.0.1", "--port", str(port), "--clients", str(size),
                   "--interval", str(ctx.interval), "--duration", str(window), "--coordinated",
                   "--grace", str(max(2.0, 2 * ctx.interval)), "--setup-timeout", str(setup_timeout),
                   "--warmup-timeout", str(warmup), "--source-base", str(1 + i * 10), "--label", f"{kind}-{n}-{i}"]
            cmd += LOADGEN_FLAGS[mode] + (["--kernel-ts"] if ctx.kernel_ts else [])
            cmd += ["--timeline", f"{timeline or OUT / 'arrivals'}-{i}.txt"]
            shards.append(Proc(cmd, LOADGEN_CPU, None, OUT / "loadgen.stderr.log"))
        ready = [json.loads(s.expect("READY", setup_timeout + 60).split(" ", 1)[1]) for s in shards]
        failed = sum(r["failed"] for r in ready)
        if abort_on_fail and failed:
            return {"server": kind, "clients": n, "mode": mode, "aborted": True, "failed": failed,
                    "established": sum(r["established"] for r in ready),
                    "first_failure": next((r["first_failure"] for r in ready if r["first_failure"]), "")}
        latest = max((r["last_tick_first_ns"] for r in ready), default=0) or time.monotonic_ns()
        start = latest + int(ctx.interval * 0.5e9)
        while start < time.monotonic_ns() + 300_000_000:
            start += int(ctx.interval * 1e9)
        end = start + int(window * 1e9)
        for s in shards:
            s.send(f"GO {start} {end}")
        time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
        u0 = sample(srv.p.pid)
        busy_due = time.monotonic() + busy_at if busy else None
        per_second = []  # server CPU in each second of the window: shows bursts (keepalive, GC)
        prev, t_prev = u0, time.monotonic()
        while time.monotonic_ns() < end:
            if busy_due is not None and time.monotonic() >= busy_due:
                srv.send(f"busy {busy}")
                busy_due = None
            step = min(1.0, (end - time.monotonic_ns()) / 1e9)
            if busy_due is not None:
                step = min(step, max(0.0, busy_due - time.monotonic()))
            time.sleep(max(0.0, step))
            if time.monotonic() - t_prev >= 0.99 or time.monotonic_ns() >= end:
                cur, t_cur = sample(srv.p.pid), time.monotonic()
                per_second.append((cur.cpu_ns - prev.cpu_ns) / 1e9 / max(1e-9, t_cur - t_prev))
                prev, t_prev = cur, t_cur
        u1 = prev
        results = []
        for s in shards:
            line = s.expect("{", window + 120)
            results.append(json.loads(line))
        alive = srv.p.poll() is None
    finally:
        for s in shards:
            s.kill()
        srv.stop()
    out = summarize(kind, n, window, ready, results, idle, u0, u1, start, end, alive)
    out["mode"] = mode
    out.update(stall_free_spreads([Path(f"{timeline or OUT / 'arrivals'}-{i}.txt") for i in range(len(shards))],
                                  start, end))
    out["cpu_peak_1s"] = max(per_second, default=0.0)
    out["cpu_per_second"] = [round(x, 3) for x in per_second]
    return out


STALL_NS = 1_000_000  # a pause between two consecutive arrivals of one tick longer than this is a stall


def stall_free_spreads(paths: list[Path], start: int, end: int) -> dict[str, Any]:
    """Per tick of the window: its spread less the pauses (> 1 ms) between consecutive arrivals.

    On this shared 2-core machine most of a bad tick's spread is such pauses: the server or the
    load generator was off its CPU (other processes), not writing slower.  Both figures are
    reported: the stall-free one shows each server's own pace, the plain one what clients saw."""
    ticks: dict[int, list[int]] = {}
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    seq, _conn, t = line.split()
                    ticks.setdefault(int(seq), []).append(int(t))
        except FileNotFoundError:
            continue
    walks, stalls = [], []
    for times in ticks.values():
        times.sort()
        if not start <= times[0] < end:
            continue
        stall = sum(d - STALL_NS for d in (b - a for a, b in zip(times, times[1:])) if d > STALL_NS)
        walks.append((times[-1] - times[0] - stall) / 1e6)
        stalls.append(stall / 1e6)
    return {"walk_p50_ms": pct(walks, 50), "walk_p99_ms": pct(walks, 99), "stall_max_ms": max(stalls, default=None)}


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summarize(kind: str, n: int, window: float, ready: list[dict], results: list[dict], idle: Usage,
              u0: Usage, u1: Usage, start: int, end: int, alive: bool) -> dict[str, Any]:
    ticks: dict[int, list[int]] = {}
    for r in results:
        for seq, first, last, count in r["tick_list"]:
            t = ticks.setdefault(seq, [first, last, 0])
            t[0] = min(t[0], first)
            t[1] = max(t[1], last)
            t[2] += count
    established = sum(r["established"] for r in results)
    dropped = sum(r["dropped"] for r in results)
    open_conns = established - dropped
    in_window = [t for t in ticks.values() if start <= t[0] < end]
    spreads = [(t[1] - t[0]) / 1e6 for t in in_window]
    messages = sum(r["messages"] for r in results)
    setup_start = min(r["setup_start_ns"] for r in results)
    last_est = max(r["last_established_ns"] for r in results)
    cpu_us = (u1.cpu_ns - u0.cpu_ns) / 1e3
    stat_us = (u1.cpu_ticks - u0.cpu_ticks) * 1e6 / CLK_TCK
    return {
        "server": kind,
        "clients": n,
        "established": established,
        "failed": sum(r["failed"] for r in results),
        "dropped": dropped,
        "connect_rate": established / ((last_est - setup_start) / 1e9) if last_est > setup_start else None,
        "window_s": window,
        "ticks": len(in_window),
        "updates_per_s": len(in_window) / window,
        "incomplete_ticks": sum(1 for t in in_window if t[2] < open_conns),
        "spread_p50_ms": pct(spreads, 50),
        "spread_p99_ms": pct(spreads, 99),
        "spread_max_ms": max(spreads) if spreads else None,
        "messages": messages,
        "bytes": sum(r["bytes"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "starved": sum(r["starved"] for r in results),
        "max_gap_ms": max(r["max_gap_ms"] for r in results),
        "server_cpu_s": cpu_us / 1e6,
        "server_cpu_stat_s": stat_us / 1e6,
        "cpu_us_per_msg": cpu_us / messages if messages else None,
        "cpu_us_per_msg_stat": stat_us / messages if messages else None,
        "cpu_us_per_msg_by_thread": {name: round((ns - u0.thread_ns.get(name, 0)) / 1e3 / messages, 3)
                                     for name, ns in u1.thread_ns.items()} if messages else {},
        "cpu_util": cpu_us / 1e6 / window,
        "rss_idle_kib": idle.rss_kib,
        "rss_kib": u1.rss_kib,
        "rss_per_conn_kib": (u1.rss_kib - idle.rss_kib) / open_conns if open_conns else None,
        "server_alive": alive,
        "pings_answered": sum(r["pings_answered"] for r in results),
        "deflate_agreed": sum(r["deflate_agreed"] for r in results),
        "inflated_bytes": sum(r["inflated_bytes"] for r in results),
        "inflate_errors": sum(r["inflate_errors"] for r in results),
        "gql_acked": sum(r["gql_acked"] for r in results),
        "gql_errors": sum(r["gql_errors"] for r in results),
        "gql_completes": sum(r["gql_completes"] for r in results),
        "protocol_errors": sum(r["protocol_errors"] for r in results),
        "first_failure": next((r["first_failure"] for r in results if r["first_failure"]), ""),
        "shards": len(results),
    }


def held(r: dict[str, Any]) -> bool:
    return (not r.get("aborted") and r["established"] == r["clients"] and r["dropped"] == 0
            and r["failed"] == 0 and r["server_alive"] and r["ticks"] > 0 and compression_ok(r))


def compression_ok(r: dict[str, Any]) -> bool:
    """Deflate clients all got permessage-deflate and every update inflated cleanly."""
    if not r.get("mode", "plain").startswith("deflate"):
        return True
    return r["deflate_agreed"] == r["established"] and r["inflate_errors"] == 0 and r["protocol_errors"] == 0


# ---- output --------------------------------------------------------------------------------------


def fmt(v: Any, spec: str = ".1f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| server | clients | N | conn/s | spread p50 (ms) | spread p99 (ms) | stall-free p50 / p99 (ms) "
            "| updates/s | wire bytes/update "
            "| server CPU % (avg / peak 1 s) | CPU/msg (µs) | RSS/conn (KiB) | lost | dropped | failed |")
    out = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        who = f"{LABELS.get(r['server'], r['server'])} | {r.get('mode', 'plain')}"
        if r.get("round"):
            who += f" (round {r['round'] + 1})"
        if r.get("aborted"):
            out.append(f"| {who} | {r['clients']:,} | - | - | - | - | - | - | - | - "
                       f"| - | - | - | {r['failed']:,} (setup) |")
            continue
        if not compression_ok(r):
            who += (f" (deflate agreed by {r['deflate_agreed']:,}, {r['inflate_errors']:,} inflate errors,"
                    f" {r['protocol_errors']:,} protocol errors)")
        out.append(
            f"| {who} | {r['clients']:,} | {fmt(r['connect_rate'], ',.0f')} "
            f"| {fmt(r['spread_p50_ms'], '.2f')} | {fmt(r['spread_p99_ms'], '.2f')} "
            f"| {fmt(r.get('walk_p50_ms'), '.1f')} / {fmt(r.get('walk_p99_ms'), '.1f')} "
            f"| {r['updates_per_s']:.2f} | {fmt(r['bytes'] / r['messages'] if r['messages'] else None, '.0f')} "
            f"| {r['cpu_util'] * 100:.1f} / {r.get('cpu_peak_1s', 0) * 100:.0f} | {fmt(r['cpu_us_per_msg'], '.2f')} "
            f"| {fmt(r['rss_per_conn_kib'], '.2f')} | {r['lost']:,} | {r['dropped']:,} | {r['failed']:,} |")
    return "\n".join(out)


def find(rows: list[dict[str, Any]], kind: str, n: int, mode: str = "plain") -> dict[str, Any] | None:
    for r in rows:
        if (r["server"] == kind and r["clients"] == n and r.get("mode", "plain") == mode
                and not r.get("aborted") and not r.get("hold")):
            return r
    return None


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def deflate_targets(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 14's targets: deflate clients at the cost of plain ones, ahead of Node and pure-Python."""
    out = []
    for mode in MODES:
        ours, floor = find(rows, "ours", 10000, mode), find(rows, "floor", 10000, mode)
        if ours and floor:
            out.append(f"- 10,000 {mode} clients, spread p99 ours / floor: {fmt(ours['spread_p99_ms'], '.1f')} / "
                       f"{fmt(floor['spread_p99_ms'], '.1f')} ms = {ratio(ours['spread_p99_ms'], floor['spread_p99_ms'])}"
                       f" (target <= 1.1x); stall-free p99 {ratio(ours.get('walk_p99_ms'), floor.get('walk_p99_ms'))}; "
                       f"CPU/msg ours / floor {ratio(ours['cpu_us_per_msg'], floor['cpu_us_per_msg'])}")
    plain, zipped = find(rows, "ours", 10000, "plain"), find(rows, "ours", 10000, "deflate")
    if plain and zipped:
        out.append(f"- ours at 10,000, deflate / plain: CPU/msg {ratio(zipped['cpu_us_per_msg'], plain['cpu_us_per_msg'])}"
                   f" (target <= 1.1x); RSS/conn {fmt(zipped['rss_per_conn_kib'], '.2f')} vs "
                   f"{fmt(plain['rss_per_conn_kib'], '.2f')} KiB (target <= plain + 2 KiB); wire bytes/update "
                   f"{ratio(zipped['bytes'] / max(1, zipped['messages']), plain['bytes'] / max(1, plain['messages']))}"
                   f" (target <= 0.40x)")
    for n in (1000, 10000):
        ours = find(rows, "ours", n, "deflate")
        for kind in ("node", "python"):
            other = find(rows, kind, n, "deflate")
            if ours and other:
                out.append(f"- {n:,} deflate clients, {kind} / ours: CPU/msg "
                           f"{ratio(other['cpu_us_per_msg'], ours['cpu_us_per_msg'])}, RSS/conn "
                           f"{ratio(other['rss_per_conn_kib'], ours['rss_per_conn_kib'])} (target > 1x)")
    return out


def floor_rounds(rows: list[dict[str, Any]]) -> list[str]:
    """Ours / floor per round of --repeat, and the median over rounds: spread p99, stall-free
    p99 and CPU per message at each N and kind of client both servers ran."""
    out = ["| N | clients | rounds | spread p99 ours / floor, per round | median | stall-free p99, median "
           "| CPU/msg, median | ours' CPU/msg by thread (µs, median) |",
           "|---:|---|---:|---|---:|---:|---:|---|"]
    by_run = {(r["server"], r["clients"], r.get("mode"), r.get("round", 0)): r
              for r in rows if not r.get("hold") and not r.get("aborted")}
    rounds = sorted({rnd for *_, rnd in by_run})
    for n, mode in ((n, mode) for n in sorted({n for _, n, _, _ in by_run}) for mode in MODES):
        pairs = [(by_run[("ours", n, mode, rnd)], by_run[("floor", n, mode, rnd)]) for rnd in rounds
                 if ("ours", n, mode, rnd) in by_run and ("floor", n, mode, rnd) in by_run]
        if not pairs:
            continue

        def med(key: str) -> float:
            return pct([o[key] / f[key] for o, f in pairs if o.get(key) and f.get(key)], 50) or math.nan

        threads: dict[str, list[float]] = {}
        for o, _ in pairs:
            for name, us in o.get("cpu_us_per_msg_by_thread", {}).items():
                threads.setdefault(name, []).append(us)
        medians = sorted(((pct(v, 50), name) for name, v in threads.items()), reverse=True)
        split = ", ".join(f"{name} {us:.2f}" for us, name in medians if us >= 0.01)
        per_round = " ".join(f"{o['spread_p99_ms'] / f['spread_p99_ms']:.2f}" for o, f in pairs)
        out.append(f"| {n:,} | {mode} | {len(pairs)} | {per_round} | {med('spread_p99_ms'):.2f}x "
                   f"| {med('walk_p99_ms'):.2f}x | {med('cpu_us_per_msg'):.2f}x | {split} |")
    return out if len(out) > 2 else []


def graphql_targets(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 18's target: GraphQL subscribers with one selection at the cost of plain clients."""
    out = []
    for n in sorted({r["clients"] for r in rows if r.get("mode") == "graphql"}):
        plain, gql = find(rows, "ours", n, "plain"), find(rows, "ours", n, "graphql")
        if not (plain and gql):
            continue
        def per_update(r: dict[str, Any]) -> float | None:
            return r["bytes"] / r["messages"] if r["messages"] else None
        out.append(f"- ours at {n:,}, GraphQL / plain: CPU/msg {fmt(gql['cpu_us_per_msg'], '.2f')} / "
                   f"{fmt(plain['cpu_us_per_msg'], '.2f')} µs = {ratio(gql['cpu_us_per_msg'], plain['cpu_us_per_msg'])}"
                   f" (target <= 1.1x); spread p50 / p99 {fmt(gql['spread_p50_ms'], '.2f')} / "
                   f"{fmt(gql['spread_p99_ms'], '.2f')} vs {fmt(plain['spread_p50_ms'], '.2f')} / "
                   f"{fmt(plain['spread_p99_ms'], '.2f')} ms; RSS/conn {fmt(gql['rss_per_conn_kib'], '.2f')} vs "
                   f"{fmt(plain['rss_per_conn_kib'], '.2f')} KiB; wire bytes/update {fmt(per_update(gql), '.0f')} vs "
                   f"{fmt(per_update(plain), '.0f')}; lost {gql['lost']:,} vs {plain['lost']:,}, dropped "
                   f"{gql['dropped']:,} vs {plain['dropped']:,}; GraphQL errors {gql['gql_errors']:,}")
    return out


def targets(rows: list[dict[str, Any]], holds: dict[tuple[str, str], dict[str, Any] | None],
            gil: dict[str, Any]) -> list[str]:
    out = []
    ours = find(rows, "ours", 10000)
    if ours:
        out.append(f"- 10,000 plain clients, spread p99 {fmt(ours['spread_p99_ms'], '.2f')} ms (target <= 30 ms)")
        for kind, want, word in (("floor", 1.5, "<="), ("python", 20, ">="), ("node", 3, ">=")):
            other = find(rows, kind, 10000)
            if other and other["cpu_us_per_msg"] and ours["cpu_us_per_msg"]:
                ratio = ours["cpu_us_per_msg"] / other["cpu_us_per_msg"] if kind == "floor" else \
                    other["cpu_us_per_msg"] / ours["cpu_us_per_msg"]
                what = "ours / floor" if kind == "floor" else f"{kind} / ours"
                out.append(f"- CPU per message at 10,000 plain clients, {what}: {ratio:.2f}x (target {word} {want}x)")
    out += deflate_targets(rows)
    out += graphql_targets(rows)
    for (kind, mode), r in holds.items():
        if r:
            out.append(f"- {LABELS.get(kind, kind)}, {mode} clients: held {r['clients']:,} for {r['window_s']:.0f} s, "
                       f"RSS {fmt(r['rss_per_conn_kib'], '.2f')} KiB/conn above idle, "
                       f"{r['dropped']} dropped, {r['lost']} lost")
        else:
            out.append(f"- {LABELS.get(kind, kind)}, {mode} clients: held none of the ladder")
    for kind, r in gil.items():
        out.append(f"- GIL, {LABELS.get(kind, kind)}: longest gap {r['max_gap_ms']:.0f} ms "
                   f"(interval {r['interval'] * 1000:.0f} ms, main thread busy {r['busy_s']:.0f} s)")
    return out


# ---- main ---------------------------------------------------------------------------------------


def capture_snapshot(ctx: Context) -> Path:
    """One real metrics_update from our server on the bench DB: the bytes the floor and Node send."""
    import asyncio

    from websockets.asyncio.client import connect

    srv, port = start_server("ours", ctx)
    try:
        async def grab() -> str:
            async with connect(f"ws://127.0.0.1:{port}", proxy=None) as ws:
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 30)
                    if isinstance(msg, str) and '"type":"metrics_update"' in msg:
                        return msg

        text = asyncio.run(grab())
    finally:
        srv.stop()
    ctx.snapshot.write_text(text + "\n")
    return ctx.snapshot


def main_runs(kinds: list[str], ns: list[int], modes: list[str], graphql: bool,
              repeat: int) -> list[tuple[int, str, int, str]]:
    """(round, server, N, clients) of the main table, in the order they run.  The servers take
    turns at each N and kind of client, so the rows a ratio compares are neighbours in time:
    this machine's load drifts over minutes (other tenants, hypervisor steal), and a comparison
    of ours now with the floor five minutes later measures the drift as much as the servers."""
    runs = []
    for rnd in range(repeat):
        for n in ns:
            for mode in run_modes("ours" if "ours" in kinds else kinds[0], modes, graphql):
                runs += [(rnd, kind, n, mode) for kind in kinds if mode in run_modes(kind, modes, graphql)]
    return runs


def run_modes(kind: str, modes: list[str], graphql: bool) -> list[str]:
    """The client modes of kind's runs at one N: with graphql, ours's GraphQL run comes right
    after its plain one, so the two compared rows are neighbours in time (the host's load drifts)."""
    if not graphql or kind != "ours" or "graphql" in modes:
        return modes
    at = modes.index("plain") + 1 if "plain" in modes else len(modes)
    return modes[:at] + ["graphql"] + modes[at:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only, 5 s windows, no hold runs")
    parser.add_argument("--servers", default=",".join(DEFAULT_SERVERS), help="comma list of " + ",".join(SERVERS)
                        + " (and python-broadcast)")
    parser.add_argument("--modes", default=",".join(MODES), help="clients: comma list of " + ",".join(LOADGEN_FLAGS))
    parser.add_argument("--arrival", choices=("read", "kernel"), default="read",
                        help="an update's arrival time: when the load generator read it, or when the kernel "
                             "received it (SO_TIMESTAMPNS: on loopback, when the server wrote it)")
    parser.add_argument("--graphql", action=argparse.BooleanOptionalAction, default=True,
                        help="ours also with GraphQL clients, right after its plain run at each N, and in the GIL run")
    parser.add_argument("--hold-modes", default="deflate",
                        help="clients of the hold runs (plain was held at 19,900 before deflate existed)")
    parser.add_argument("--timeline", action="store_true",
                        help="write every arrival of the main runs to bench/.data/fanout/timeline-*.txt")
    parser.add_argument("--clients", default="100,1000,10000", help="N values for the main table")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of the main table; with more than one, the ratios to the floor are "
                             "given per round and as their median")
    parser.add_argument("--window", type=float, default=10.0, help="measurement window per run, s")
    parser.add_argument("--hold", type=float, default=60.0, help="window of the largest-N runs, s (0 = skip)")
    parser.add_argument("--max-clients", type=int, default=50000,
                        help="top of the hold ladder (capped by RLIMIT_NOFILE, see the output)")
    parser.add_argument("--gil-busy", type=float, default=5.0, help="seconds of busy Python (0 = skip)")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skills", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.window, args.hold = "100,1000", 5.0, 0.0

    started = time.monotonic()
    kinds = [k for k in args.servers.split(",") if k]
    ns = [int(x) for x in args.clients.split(",") if x]
    modes = [m for m in args.modes.split(",") if m]
    hold_modes = [m for m in args.hold_modes.split(",") if m]
    if not set(modes + hold_modes) <= set(LOADGEN_FLAGS):
        parser.error(f"--modes / --hold-modes take {','.join(LOADGEN_FLAGS)}")
    nofile = raise_nofile(max(args.max_clients, max(ns)) + 1024)
    bins = build_c()
    ensure_extension()
    db = prepare_db(args.rows, args.skills, args.days)
    ctx = Context(bins=bins, db=db, snapshot=OUT / "snapshot.json", interval=args.interval, nofile=nofile,
                  kernel_ts=args.arrival == "kernel",
                  shard_max=min(10000, nofile - 256))
    capture_snapshot(ctx)
    snap_len = len(ctx.snapshot.read_bytes()) - 1
    server_cap = nofile - 100  # a server process holds at most RLIMIT_NOFILE descriptors
    log(f"RLIMIT_NOFILE {nofile}; snapshot {snap_len} bytes; {os.cpu_count()} CPUs")
    if server_cap < args.max_clients:
        log(f"note: one process may hold at most {nofile} descriptors (hard limit; raising it needs "
            f"CAP_SYS_RESOURCE), so the hold ladder starts at {server_cap:,}, not {args.max_clients:,}")

    rows: list[dict[str, Any]] = []
    holds: dict[tuple[str, str], dict[str, Any] | None] = {}
    gil: dict[str, dict[str, Any]] = {}
    try:
        for rnd, kind, n, mode in main_runs(kinds, ns, modes, args.graphql, args.repeat):
            log(f"[{time.monotonic() - started:5.0f} s] {kind} N={n:,} {mode}"
                + (f" (round {rnd + 1} of {args.repeat})" if args.repeat > 1 else ""))
            tl = OUT / f"timeline-{kind}-{n}-{mode}-r{rnd}" if args.timeline else None
            r = run_load(kind, n, args.window, ctx, mode=mode, timeline=tl)
            r["round"] = rnd
            rows.append(r)
            log(table([r]).splitlines()[-1])
        if args.hold > 0:
            top = min(args.max_clients, server_cap)
            ladder = sorted({x for x in (top, 15000, 10000, 5000, 2000, 1000) if x <= top}, reverse=True)
            for kind in kinds:
                for mode in hold_modes:
                    holds[kind, mode] = None
                    for n in ladder:
                        log(f"[{time.monotonic() - started:5.0f} s] hold {kind} N={n:,} {mode} for {args.hold:.0f} s")
                        r = run_load(kind, n, args.hold, ctx, mode=mode, abort_on_fail=True)
                        r["hold"] = True
                        rows.append(r)
                        log(table([r]).splitlines()[-1])
                        if held(r):
                            holds[kind, mode] = r
                            break
        if args.gil_busy > 0:
            gil_runs = [(k, k, "plain") for k in ("ours", "python") if k in kinds]
            if args.graphql and "ours" in kinds:
                gil_runs.insert(1, ("ours-graphql", "ours", "graphql"))
            for name, kind, mode in gil_runs:
                log(f"[{time.monotonic() - started:5.0f} s] GIL {name}: main thread busy {args.gil_busy:.0f} s")
                r = run_load(kind, 10, args.gil_busy + 5 * args.interval + 2, ctx, mode=mode, busy=args.gil_busy,
                             busy_at=2.0)
                r.update(interval=args.interval, busy_s=args.gil_busy, gil=True)
                gil[name] = r
                log(f"  longest gap {r['max_gap_ms']:.0f} ms")
    finally:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        raw = {"argv": sys.argv, "nofile": nofile, "snapshot_bytes": snap_len, "cpus": os.cpu_count(),
               "rows": rows, "gil": gil}
        (OUT / f"results-{stamp}.json").write_text(json.dumps(raw, indent=1))
        log(f"raw results: {OUT / f'results-{stamp}.json'}")

    main_rows = [r for r in rows if not r.get("hold")]
    print(f"\nsnapshot {snap_len} bytes, interval {args.interval} s, window {args.window:.0f} s, "
          f"server on CPU {SERVER_CPU}, load generator on CPU {LOADGEN_CPU}\n")
    print(table(main_rows))
    hold_rows = [r for r in rows if r.get("hold")]
    if hold_rows:
        print(f"\nLargest N held for {args.hold:.0f} s (descending ladder, first success wins; a deflate run "
              "counts only if every client got permessage-deflate and every update inflated):\n")
        print(table(hold_rows))
    if gil:
        print("\nGIL: 10 clients; the server process's main thread runs pure Python for "
              f"{args.gil_busy:.0f} s inside the window\n")
        print("| server | interval (ms) | longest gap between updates (ms) | updates in window | lost |")
        print("|---|---:|---:|---:|---:|")
        for kind, r in gil.items():
            print(f"| {LABELS[kind]} | {r['interval'] * 1000:.0f} | {r['max_gap_ms']:.0f} | {r['ticks']} "
                  f"| {r['lost']:,} |")
    rounds = floor_rounds(rows)
    if rounds:
        print("\nOurs / floor, the runs of each round side by side (median over rounds):\n")
        print("\n".join(rounds))
    print("\nTargets:\n")
    print("\n".join(targets(rows, holds, gil)))
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
