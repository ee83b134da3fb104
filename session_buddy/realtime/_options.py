"""The constructor's arguments of RealTimeMetricsServer, checked once: TypeError or ValueError
naming the bad one, before anything is bound or opened."""

from __future__ import annotations

import logging
import math
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from session_buddy.realtime._network_policy import validate_allowed_hosts
from session_buddy.realtime._webhook_config import WebhookEndpoint, webhook_endpoints

__all__ = [
    "LOGGER_NAME", "MAX_RECOVERY_WINDOW", "ROLES", "RedisTarget", "ServerOptions", "parse_redis_url",
    "server_options",
]

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
    role: str
    redis: RedisTarget | None
    redis_prefix: str
    webhooks: tuple[WebhookEndpoint, ...] = ()


ROLES = ("standalone", "publisher", "edge")


@dataclass(frozen=True)
class RedisTarget:
    """Where a publisher or an edge finds Redis (parsed from redis_url)."""

    host: str
    port: int
    db: int
    password: str | None = field(repr=False)


def _role(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"role must be a str, not {type(value).__name__}")
    if value not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {value!r}")
    return value


def parse_redis_url(value: Any) -> RedisTarget:
    """redis://[[user]:password@]host[:port][/db] into a RedisTarget; ValueError otherwise.

    rediss:// (TLS) is refused: Debian bookworm's hiredis 0.14.1 has no TLS support (hiredis_ssl
    came with 1.0), so the link could only speak plain text to a server the user asked to reach
    over TLS."""
    if not isinstance(value, str):
        raise TypeError(f"redis_url must be a str, not {type(value).__name__}")
    url = urllib.parse.urlsplit(value)
    if url.scheme == "rediss":
        raise ValueError("redis_url: rediss:// (TLS) is not supported: the system's hiredis 0.14.1 "
                         "has no TLS; reach Redis over a TLS tunnel (stunnel, spiped) and use redis://")
    if url.scheme != "redis":
        raise ValueError(f"redis_url must start with redis://, got {value!r}")
    try:
        port = url.port or 6379
    except ValueError:
        raise ValueError(f"redis_url has a bad port: {value!r}") from None
    if not url.hostname:
        raise ValueError(f"redis_url names no host: {value!r}")
    path = url.path.lstrip("/")
    if path and not path.isdigit():
        raise ValueError(f"redis_url's database must be a number, got {path!r}")
    if url.query or url.fragment:
        raise ValueError(f"redis_url takes no query or fragment: {value!r}")
    password = None if url.password is None else urllib.parse.unquote(url.password)
    return RedisTarget(host=url.hostname, port=port, db=int(path or 0), password=password)


def _redis_prefix(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"redis_prefix must be a str, not {type(value).__name__}")
    if not value or len(value) > 200 or not value.isprintable() or " " in value:
        raise ValueError(f"redis_prefix must be 1..200 printable characters without spaces, got {value!r}")
    return value


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
    logger: Any, allowed_hosts: Any, max_pending: Any, recovery_window: Any, role: Any = "standalone",
    redis_url: Any = None, redis_prefix: Any = "session_buddy", webhooks: Any = None,
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
    role_s = _role(role)
    redis = None if redis_url is None else parse_redis_url(redis_url)
    if role_s != "standalone" and redis is None:
        raise ValueError(f"role {role_s!r} needs redis_url")
    if role_s == "standalone" and redis is not None:
        raise ValueError("redis_url is only for role 'publisher' or 'edge'")
    prefix = _redis_prefix(redis_prefix)
    hosts = validate_allowed_hosts(allowed_hosts)
    path = normalize_db_path(db_path)
    lg = resolve_logger(logger)
    origins = _origins(allowed_origins)
    cert = _optional_path(ssl_certfile, "ssl_certfile")
    key = _optional_path(ssl_keyfile, "ssl_keyfile")
    if (cert is None) != (key is None):
        raise ValueError("ssl_certfile and ssl_keyfile must be given together")
    hooks = webhook_endpoints(webhooks)
    if hooks and role_s == "edge":
        raise ValueError("webhooks go on the publisher: an edge has no DB to keep them in, and every "
                         "edge would send each event again")
    return ServerOptions(
        host=host_s, port=port_i, db_path=path, update_interval=interval, require_auth=auth,
        max_clients=clients, max_message_size=message_size, top_n=top,
        anomaly_threshold=threshold, record_anomalies=record, logger=lg,
        allowed_origins=origins, ssl_certfile=cert, ssl_keyfile=key, jwt_secret=_secret(jwt_secret),
        allowed_hosts=hosts, max_pending=pending, recovery_window=window, role=role_s, redis=redis,
        redis_prefix=prefix, webhooks=hooks,
    )
