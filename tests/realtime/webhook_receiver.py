"""A real HTTP receiver for webhook tests: http.server on a thread, on port 0.

Each request is answered from a script of behaviours (a status code, or "hang" to hold the
connection until the receiver closes), then the last behaviour repeats.  What arrived is
handed to the test's event loop through an asyncio.Queue, so tests await requests instead of
sleeping."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Receiver"]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    def __init__(self, loop: asyncio.AbstractEventLoop, script: list[Any] | None = None) -> None:
        self.script = list(script or [200])
        self.requests: asyncio.Queue[Received] = asyncio.Queue()
        self.count = 0
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                behaviour = receiver.script[min(receiver.count, len(receiver.script) - 1)]
                receiver.count += 1
                loop.call_soon_threadsafe(receiver.requests.put_nowait, got)
                if behaviour == "hang":
                    receiver._release.wait()
                    return
                self.send_response(behaviour)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    async def next(self, timeout: float = 20.0) -> Received:
        return await asyncio.wait_for(self.requests.get(), timeout)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
