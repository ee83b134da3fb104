"""Legacy import path of the pure-Python server: the same objects, plus `run_server`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from session_buddy.realtime.server import RealTimeMetricsServer

__all__ = ["RealTimeMetricsServer", "run_server"]


async def run_server(
    host: str = "localhost",
    port: int = 8765,
    db_path: str | os.PathLike[str] | Path | None = None,
    update_interval: float = 1.0,
    require_auth: bool = False,
) -> None:
    """Serve until cancelled (Ctrl+C under asyncio.run), then stop cleanly."""
    server = RealTimeMetricsServer(host, port, db_path, update_interval, require_auth)
    await server.start()
    try:
        await asyncio.Future()  # runs until cancelled
    finally:
        await server.stop()
