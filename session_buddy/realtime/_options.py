"""The constructor's arguments of RealTimeMetricsServer, checked once: TypeError or ValueError
naming the bad one, before anything is bound or opened."""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from session_buddy.realtime._network_policy import validate_allowed_hosts

__all__ = ["LOGGER_NAME", "MAX_RECOVERY_WINDOW", "ServerOptions", "server_options"]

LOGGER_NAME = "session_buddy.realtime"

AnyLogger = logging.Logger | logging.LoggerAdapter[Any]


@dataclass(frozen=True)
class ServerOptions:
    """Every constructor argument, validated and normalised."""

    host: str
    port: int
    db_path: Path
    update_interval: float
    require_auth: bool
    max_clients: int
    max_message_size: int
    top_n: int
    anomaly_threshold: float
    record_anomalies: bool
    logger: AnyLogger
    allowed_origins: tuple[str, ...] | None
    ssl_certfile: Path | None
    ssl_keyfile: Path | None
    jwt_secret: bytes | None = field(repr=False)
    allowed_hosts: tuple[str, ...] | None
    max_pending: int
    recovery_window: float


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value!r}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


# The longest recovery window: a day of updates (the history of get_history spans as much).
MAX_RECOVERY_WINDOW = 86400.0


def _recovery_window(value: Any) -> float:
    """Seconds of updates kept for clients that resume: 0 (keep none) up to a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"recovery_window must be a number, not {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x) or not 0 <= x <= MAX_RECOVERY_WINDOW:
        raise ValueError(f"recovery_window must be between 0 and {MAX_RECOVERY_WINDOW:g} seconds, got {value!r}")
    return x


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, int):  # bool is an int; 0 and 1 have always been accepted
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return bool(value)


def _host(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"host must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError("host must not be empty")
    return value


def normalize_db_path(db_path: Any) -> Path:
    """None -> ./.session-buddy/skills.db; str or PathLike -> Path; else TypeError."""
    if db_path is None:
        return Path.cwd() / ".session-buddy" / "skills.db"
    if isinstance(db_path, (str, os.PathLike)):
        path = Path(os.fspath(db_path))
        if not str(path) or str(path) == ".":
            raise ValueError("db_path must name a file")
        return path
    raise TypeError(f"db_path must be a str, PathLike or None, not {type(db_path).__name__}")


def resolve_logger(logger: Any) -> AnyLogger:
    if logger is None:
        return logging.getLogger(LOGGER_NAME)
    if not callable(getattr(logger, "log", None)):
        raise TypeError("logger must be a logging.Logger (or have a log() method)")
    return logger  # type: ignore[no-any-return]


def _optional_path(value: Any, name: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str, PathLike or None, not {type(value).__name__}")
    path = Path(os.fspath(value))
    if not str(path) or str(path) == ".":
        raise ValueError(f"{name} must name a file")
    return path


def _origins(allowed_origins: Any) -> tuple[str, ...] | None:
    if allowed_origins is None:
        return None
    if isinstance(allowed_origins, (str, bytes)):
        raise TypeError("allowed_origins must be a list of origins, not a single string")
    try:
        origins = tuple(allowed_origins)
    except TypeError:
        raise TypeError(
            f"allowed_origins must be an iterable of str or None, not {type(allowed_origins).__name__}"
        ) from None
    for origin in origins:
        if not isinstance(origin, str):
            raise TypeError(f"allowed_origins must hold str, not {type(origin).__name__}")
        if not origin or origin != origin.strip() or any(c in origin for c in "\r\n\0"):
            raise ValueError(f"allowed_origins holds an invalid origin: {origin!r}")
    return origins


def _secret(jwt_secret: Any) -> bytes | None:
    if jwt_secret is None:
        return None
    if isinstance(jwt_secret, str):
        secret = jwt_secret.encode()
    elif isinstance(jwt_secret, bytes):
        secret = jwt_secret
    else:
        raise TypeError(f"jwt_secret must be a str, bytes or None, not {type(jwt_secret).__name__}")
    if not secret:
        raise ValueError("jwt_secret must not be empty")
    return secret


def server_options(
    host: Any, port: Any, db_path: Any, update_interval: Any, require_auth: Any, *,
    max_clients: Any, max_message_size: Any, allowed_origins: Any, ssl_certfile: Any,
    ssl_keyfile: Any, jwt_secret: Any, anomaly_threshold: Any, top_n: Any, record_anomalies: Any,
    logger: Any, allowed_hosts: Any, max_pending: Any, recovery_window: Any,
) -> ServerOptions:
    """Check every argument in the order the C constructor did, so the first bad one is named."""
    host_s = _host(host)
    port_i = _int(port, "port", 0, 65535)
    interval = _positive_float(update_interval, "update_interval")
    auth = _bool(require_auth, "require_auth")
    clients = _int(max_clients, "max_clients", 0, 10_000_000)
    message_size = _int(max_message_size, "max_message_size", 1, 64 * 1024 * 1024)
    top = _int(top_n, "top_n", 1, 100_000)
    threshold = _positive_float(anomaly_threshold, "anomaly_threshold")
    record = _bool(record_anomalies, "record_anomalies")
    pending = _int(max_pending, "max_pending", 1, 10_000_000)
    window = _recovery_window(recovery_window)
    hosts = validate_allowed_hosts(allowed_hosts)
    path = normalize_db_path(db_path)
    lg = resolve_logger(logger)
    origins = _origins(allowed_origins)
    cert = _optional_path(ssl_certfile, "ssl_certfile")
    key = _optional_path(ssl_keyfile, "ssl_keyfile")
    if (cert is None) != (key is None):
        raise ValueError("ssl_certfile and ssl_keyfile must be given together")
    return ServerOptions(
        host=host_s, port=port_i, db_path=path, update_interval=interval, require_auth=auth,
        max_clients=clients, max_message_size=message_size, top_n=top,
        anomaly_threshold=threshold, record_anomalies=record, logger=lg,
        allowed_origins=origins, ssl_certfile=cert, ssl_keyfile=key, jwt_secret=_secret(jwt_secret),
        allowed_hosts=hosts, max_pending=pending, recovery_window=window,
    )
