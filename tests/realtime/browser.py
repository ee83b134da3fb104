"""Real headless Chromium and a real server on a thread of its own, for the dashboard tests.

Selenium calls block, so the server's asyncio loop cannot be the test's: `LiveServer` runs
`RealTimeMetricsServer` on a private loop in a background thread, and the test drives the
browser from the main thread. A `TcpProxy` in front of it (`LiveServer.proxy()`) runs on that
loop too, so a test can cut the browser's connection while the server keeps going. Imported as a plain module (tests/conftest.py puts tests/realtime
on sys.path).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tcp_proxy import TcpProxy

__all__ = [
    "CHROMEDRIVER",
    "CHROMIUM",
    "LiveServer",
    "browser_missing",
    "make_driver",
    "wait_js",
]

CHROMIUM = os.environ.get("SB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SB_CHROMEDRIVER", "/usr/bin/chromedriver")

T = TypeVar("T")

# Generous: the CI machine has two loaded cores, and Chromium is heavy.
START_TIMEOUT = 20.0


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    for what, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{what} not found at {path} (install Debian's chromium and chromium-driver)"
    return None


def make_driver(profile_dir: Path, width: int = 1360, height: int = 900) -> Any:
    """Headless Chromium through chromedriver, console messages kept for `get_log("browser")`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--window-size={width},{height}",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(arg)
    # "performance" carries the DevTools network events (the WebSocket handshake's headers).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # Under `make asan` this process runs with the sanitizer runtime preloaded; the browser
    # must not inherit it.
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PYTHONMALLOC")}
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env=env), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def wait_js(driver: Any, script: str, *args: Any, timeout: float = 30.0, message: str = "") -> Any:
    """Run `script` (a function body: `return ...`) until it returns a truthy value; return it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    last: list[Any] = [None]

    def probe(d: Any) -> Any:
        last[0] = d.execute_script(script, *args)
        return last[0]

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(probe)
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {message or script!r}; last value {last[0]!r}"
        ) from None


class LiveServer:
    """A `RealTimeMetricsServer` served from a background thread's own asyncio loop."""

    def __init__(self, db_path: Path, *, port: int = 0, update_interval: float = 0.25, **kwargs: Any) -> None:
        from session_buddy.realtime import RealTimeMetricsServer

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-server", daemon=True)
        self._thread.start()

        async def build() -> Any:  # constructed on its loop's thread, like any server
            return RealTimeMetricsServer(host="127.0.0.1", port=port, db_path=db_path,
                                         update_interval=update_interval, **kwargs)

        self.server = self.run(build)
        self.latest: dict[str, Any] | None = None  # the newest snapshot broadcast
        self._proxies: list[TcpProxy] = []
        self.call(lambda: self.server.register_metrics_subscriber(self._record))

    def _record(self, payload: dict[str, Any]) -> None:
        self.latest = payload

    def run(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = START_TIMEOUT) -> T:
        """Run `factory()` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(factory(), self._loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """Run the plain function `fn()` on the server's loop (asyncio objects are not thread-safe)."""
        async def run() -> T:
            return fn()

        return self.run(run)

    def proxy(self) -> TcpProxy:
        """A started TcpProxy to this server, on its loop; closed by stop()."""
        proxy = self.run(TcpProxy(self.port).start)
        self._proxies.append(proxy)
        return proxy

    def latest_seq(self) -> int:
        """seq of the newest snapshot broadcast (-1 before the first)."""
        latest = self.latest
        return -1 if latest is None else int(latest["seq"])

    def start(self) -> LiveServer:
        self.run(self.server.start)
        return self

    def stop(self) -> None:
        """Stop the server (if running) and its loop thread. Idempotent."""
        if self._loop.is_closed():
            return
        try:
            async def stop() -> None:
                for proxy in self._proxies:
                    await proxy.close()
                if self.server.running:
                    await self.server.stop()

            self.run(stop)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    @property
    def port(self) -> int:
        return int(self.server.port)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def subscriptions(self) -> list[str | None]:
        """`subscription_skill` of every connected network client, read on the server's loop."""
        async def read() -> list[str | None]:
            return [c.subscription_skill for c in self.server.clients]

        return self.run(read)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
