"""Real-time skill metrics over WebSocket, served by a C extension on libwebsockets.

    from session_buddy.realtime import RealTimeMetricsServer

    async with RealTimeMetricsServer(port=8765) as server:
        ...
"""

from session_buddy.realtime.server import NetworkClient, RealTimeMetricsServer
from session_buddy.realtime.websocket_server import run_server

__all__ = ["NetworkClient", "RealTimeMetricsServer", "run_server"]
