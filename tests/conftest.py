"""Shared fixtures: seeded SQLite files in tmp_path, servers on port 0, real `websockets` clients.

The helper modules live in tests/realtime/ (wsutil, rawws, skills_seed, protocol_checks, gil_client) and are
imported as plain modules. `session_buddy.realtime` and `session_buddy.storage` are
imported inside fixtures only, so a broken build never stops other test directories
from being collected.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

REALTIME_TESTS = Path(__file__).resolve().parent / "realtime"
if str(REALTIME_TESTS) not in sys.path:
    sys.path.insert(0, str(REALTIME_TESTS))
# Plain helper modules get pytest's assertion messages too.
pytest.register_assert_rewrite("protocol_checks", "rawws", "skills_seed", "wsutil")

from skills_seed import SeededDB, create_db, seed_db  # noqa: E402
from wsutil import DEFAULT_TIMEOUT, client_url, open_client  # noqa: E402

# Short enough to keep the suite fast, long enough for two loaded cores.
FAST_INTERVAL = 0.2
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


@pytest.fixture(autouse=True)
def _no_auth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide about authentication themselves, whatever the shell exported."""
    monkeypatch.delenv("SESSION_BUDDY_AUTH_ENABLED", raising=False)
    monkeypatch.delenv("SESSION_BUDDY_JWT_SECRET", raising=False)


@pytest.fixture
def fast_interval() -> float:
    return FAST_INTERVAL


@pytest.fixture
def seeded_db(tmp_path: Path) -> SeededDB:
    """tmp_path/skills.db, migrated, holding the invocations of tests/realtime/skills_seed.py."""
    return seed_db(tmp_path / "skills.db")


@pytest.fixture
def empty_db(tmp_path: Path) -> Path:
    """tmp_path/empty/skills.db, migrated, with no invocations."""
    return create_db(tmp_path / "empty" / "skills.db")


@pytest.fixture
async def warm_executor() -> None:
    """Start the loop's default executor thread now, so thread counts taken later are stable."""
    await asyncio.get_running_loop().run_in_executor(None, lambda: None)


class ServerFactory:
    """`await make(**kwargs)` builds a server (defaults: localhost, port 0, the seeded DB,
    FAST_INTERVAL) and starts it unless `start=False`. Teardown stops whatever still runs."""

    def __init__(self, default_db: Path) -> None:
        self.default_db = default_db
        self.servers: list[Any] = []

    async def __call__(self, *, start: bool = True, **kwargs: Any) -> Any:
        from session_buddy.realtime import RealTimeMetricsServer

        kwargs.setdefault("host", "localhost")
        kwargs.setdefault("port", 0)
        kwargs.setdefault("db_path", self.default_db)
        kwargs.setdefault("update_interval", FAST_INTERVAL)
        cls = kwargs.pop("cls", RealTimeMetricsServer)
        server = cls(**kwargs)
        self.servers.append(server)
        if start:
            await asyncio.wait_for(server.start(), START_TIMEOUT)
        return server

    async def close_all(self) -> None:
        for server in reversed(self.servers):
            if server.running:
                await asyncio.wait_for(server.stop(), STOP_TIMEOUT)


@pytest.fixture
async def server_factory(seeded_db: SeededDB) -> AsyncIterator[ServerFactory]:
    factory = ServerFactory(seeded_db.path)
    yield factory
    await factory.close_all()


@pytest.fixture
async def server(server_factory: ServerFactory) -> Any:
    """A running server on the seeded DB: localhost, port 0, update_interval FAST_INTERVAL."""
    return await server_factory()


class ClientFactory:
    """`await make(server_or_url)` connects a `websockets` client and consumes `connected`;
    `await make.with_hello(...)` also returns that message. Teardown closes them all."""

    def __init__(self) -> None:
        self.opened: list[Any] = []

    async def with_hello(self, target: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        url = target if isinstance(target, str) else client_url(target)
        ws, hello = await open_client(url, DEFAULT_TIMEOUT, **kwargs)
        self.opened.append(ws)
        return ws, hello

    async def __call__(self, target: Any, **kwargs: Any) -> Any:
        ws, _ = await self.with_hello(target, **kwargs)
        return ws

    def track(self, ws: Any) -> Any:
        self.opened.append(ws)
        return ws

    async def close_all(self) -> None:
        await asyncio.gather(
            *(asyncio.wait_for(ws.close(), 5) for ws in self.opened), return_exceptions=True
        )


@pytest.fixture
async def client_factory() -> AsyncIterator[ClientFactory]:
    factory = ClientFactory()
    yield factory
    await factory.close_all()


@pytest.fixture
async def client(server: Any, client_factory: ClientFactory) -> Any:
    """One `websockets` client connected to `server`, its `connected` message consumed."""
    return await client_factory(server)


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, made with openssl."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key
