"""session-buddy's standalone Prometheus exporter, kept for applications that push their own figures.

    from session_buddy.realtime.metrics_exporter import create_exporter

    exporter = create_exporter(port=9090)          # http://localhost:9090/metrics
    exporter.record_invocation("pytest-run", "execution", True, 45.2)
    exporter.update_completion_rate("pytest-run", 0.92)

The server does not need it: its own `GET /metrics` exports the same five
names, computed from the database by the engine (docs/realtime/MIGRATING.md).
This module is for code that called the exporter itself; it is built on
`prometheus_client` and registers its metrics in that library's default
registry, under the same names, labels and buckets as session-buddy's, so
dashboards and alert rules read either source alike.  Importing
`session_buddy.realtime` does not import this module.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "DURATION_BUCKETS",
    "PrometheusExporter",
    "active_sessions_total",
    "anomalies_detected_total",
    "create_exporter",
    "skill_completion_rate",
    "skill_duration_seconds",
    "skill_invocations_total",
]

logger = logging.getLogger(__name__)

# Upper bounds in seconds, as session-buddy's exporter and the server's /metrics use them (+Inf implied).
DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

# One set per process: prometheus_client refuses to register a name twice in its registry.
skill_invocations_total = Counter(
    "skill_invocations_total", "Skill invocations.", ["skill_name", "workflow_phase", "completed"]
)
skill_duration_seconds = Histogram(
    "skill_duration_seconds", "Skill execution time in seconds.", ["skill_name", "workflow_phase"],
    buckets=DURATION_BUCKETS,
)
skill_completion_rate = Gauge("skill_completion_rate", "Share of invocations that completed, 0..1.", ["skill_name"])
active_sessions_total = Gauge("active_sessions_total", "Sessions active now.")
anomalies_detected_total = Counter(
    "anomalies_detected_total", "Anomalies detected.", ["anomaly_type", "skill_name"]
)


class PrometheusExporter:
    """Records skill figures into the module's metrics and serves them over HTTP once started.

    Recording works whether or not the HTTP endpoint runs; prometheus_client makes every
    update thread-safe.
    """

    def __init__(self, port: int = 9090) -> None:
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"Port must be between 1 and 65535, got {port!r}")
        self.port = port
        self._running = False
        logger.info("PrometheusExporter initialized on port %d", port)

    def start(self) -> None:
        """Serve /metrics on the port from a daemon thread.  A second call only warns; a failed
        bind raises OSError and leaves the exporter stopped."""
        if self._running:
            logger.warning("Prometheus exporter already running on port %d", self.port)
            return
        try:
            start_http_server(self.port)
        except OSError as exc:
            logger.error("Failed to start Prometheus server on port %d: %s", self.port, exc)
            raise
        self._running = True
        logger.info("Prometheus metrics server started: http://localhost:%d/metrics", self.port)

    def record_invocation(self, skill_name: str, workflow_phase: str | None, completed: bool,
                          duration_seconds: float | None) -> None:
        """Count one invocation; observe its duration when there is one.  A missing or empty
        phase is recorded as "unknown"."""
        phase = workflow_phase or "unknown"
        skill_invocations_total.labels(
            skill_name=skill_name, workflow_phase=phase, completed="true" if completed else "false"
        ).inc()
        if duration_seconds is not None:
            skill_duration_seconds.labels(skill_name=skill_name, workflow_phase=phase).observe(duration_seconds)
        logger.debug("Recorded invocation: skill=%s phase=%s completed=%s duration=%s",
                     skill_name, phase, completed, duration_seconds)

    def update_completion_rate(self, skill_name: str, rate: float) -> None:
        """Set a skill's completion rate, 0..1 (ValueError outside)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"Completion rate must be between 0 and 1, got {rate}")
        skill_completion_rate.labels(skill_name=skill_name).set(rate)

    def record_anomaly(self, anomaly_type: str, skill_name: str) -> None:
        """Count one detected anomaly of a skill."""
        anomalies_detected_total.labels(anomaly_type=anomaly_type, skill_name=skill_name).inc()
        logger.debug("Recorded anomaly: type=%s skill=%s", anomaly_type, skill_name)

    def update_active_sessions(self, count: int) -> None:
        """Set the number of active sessions (ValueError when negative)."""
        if count < 0:
            raise ValueError(f"Session count cannot be negative, got {count}")
        active_sessions_total.set(count)

    def is_running(self) -> bool:
        """True once start() has bound the HTTP endpoint."""
        return self._running


def create_exporter(port: int = 9090) -> PrometheusExporter:
    """A started PrometheusExporter on port."""
    exporter = PrometheusExporter(port=port)
    exporter.start()
    return exporter
