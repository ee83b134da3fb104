"""session-buddy: skill metrics storage and the real-time metrics server."""

__all__: list[str] = []
