"""`server.clients` never holds the service lock while it makes Python objects: a garbage
collection that runs Python code reading `clients` (a gc callback, a __del__) must not hang the
process, and the server keeps accepting afterwards.

The scenario runs in a child process: a hang there fails the test on a timeout instead of
freezing the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, sys
    from session_buddy.realtime import RealTimeMetricsServer
    from websockets.asyncio.client import connect

    N_CLIENTS = 60

    async def main(db):
        server = RealTimeMetricsServer(host="127.0.0.1", port=0, db_path=db, update_interval=0.2)
        await server.start()
        url = f"ws://127.0.0.1:{server.port}"
        clients = [await connect(url, proxy=None) for _ in range(N_CLIENTS)]
        for ws in clients:
            await ws.recv()                      # "connected": admitted
        for ws in clients[:10]:                  # rows that carry a skill name too
            await ws.send('{"type":"subscribe","skill_name":"pytest-run"}')
            while '"subscription_confirmed"' not in await ws.recv():
                pass
        reads = []

        # CPython reuses up to 2,000 freed tuples per size without counting them as allocations,
        # which is why the hang needed ~2,100 clients.  Holding 5-tuples (the size of a client
        # row) keeps that free list empty, so each row the build makes counts, and triggers a
        # collection; each monitor below drains the rows its own read gave back.
        def drain_free_list():
            return [tuple([i] * 5) for i in range(2500)]

        class Monitor:                           # a __del__ that reads clients, run by the GC
            def __del__(self):
                if len(reads) >= 60:
                    return
                reads.append(server.clients)
                reads.append(drain_free_list())

        def on_gc(phase, info):                  # a gc.callbacks monitor that reads clients
            if phase == "start" and len(reads) < 60:  # bounded: each read keeps 2,500 tuples
                reads.append(server.clients)
                reads.append(drain_free_list())
                cycle = Monitor()
                cycle.self = cycle               # freed by a later collection

        for _ in range(3):
            hold = drain_free_list()
            gc.callbacks.append(on_gc)
            gc.set_threshold(1)                  # a collection inside nearly every allocation
            try:
                seen = server.clients
            finally:
                gc.set_threshold(700)
                gc.callbacks.remove(on_gc)
            del hold
            assert len(seen) == N_CLIENTS, len(seen)
            assert sum(c.subscription_skill == "pytest-run" for c in seen) == 10
        gc.collect()
        seen_by_monitors = [len(x) for x in reads[::2]]
        assert seen_by_monitors and set(seen_by_monitors) == {N_CLIENTS}, seen_by_monitors[:10]
        # The service thread still accepts and serves.
        late = await connect(url, proxy=None)
        hello = await asyncio.wait_for(late.recv(), 10)
        assert '"connected"' in hello, hello
        for ws in [*clients, late]:
            await ws.close()
        await server.stop()
        print("ok", len(seen_by_monitors))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_a_gc_callback_reading_clients_during_the_build_does_not_hang(seeded_db, tmp_path: Path) -> None:
    script = tmp_path / "gc_clients.py"
    script.write_text(SCRIPT)
    try:
        done = subprocess.run([sys.executable, str(script), str(seeded_db.path)],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("the process hung: server.clients deadlocked under a gc callback") from None
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok"), done.stdout
