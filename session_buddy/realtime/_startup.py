"""What start() prepares before the C core binds: the one CoreConfig it takes, the bind address,
the TLS files, the open-file limit and the database."""

from __future__ import annotations

import errno
import ipaddress
import os
import resource
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from session_buddy.realtime import _core, auth
from session_buddy.realtime._graphql_document import schema_sdl
from session_buddy.realtime._network_policy import host_check_names
from session_buddy.realtime._options import AnyLogger, ServerOptions

__all__ = ["CoreConfig", "core_config", "effective_secret", "ensure_database"]

# Served over HTTP at / on the WebSocket port (loaded into memory at start()).
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"


@dataclass(frozen=True)
class CoreConfig:
    """Everything ServerBase.start_core needs, in the types its C reader checks."""

    db_path: str
    iface: str | None
    disable_ipv6: bool
    use_poll: bool
    port: int
    interval_s: float
    recovery_window_s: float
    top_n: int
    anomaly_threshold: float
    record_anomalies: bool
    max_clients: int
    max_message_size: int
    max_pending: int
    min_log_level: int
    static_dir: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None
    allowed_origins: tuple[str, ...] | None
    allowed_hosts: tuple[str, ...] | None
    jwt_secret: bytes | None = field(repr=False)
    role: int = 0                   # ROLE_STANDALONE / ROLE_PUBLISHER / ROLE_EDGE of _core
    redis_host: str | None = None
    redis_port: int = 0
    redis_db: int = 0
    redis_password: str | None = field(default=None, repr=False)
    redis_prefix: str = "session_buddy"
    graphql_schema: str | None = None  # the SDL GET /graphql/schema serves


def effective_secret(options: ServerOptions) -> bytes | None:
    """The JWT secret when authentication is on; ValueError when it is on without one."""
    if not (options.require_auth or auth.auth_enabled()):
        return None
    secret = options.jwt_secret
    if secret is None:
        env_secret = auth.environment_secret()
        secret = None if env_secret is None else env_secret.encode()
    if secret is None:
        raise ValueError(
            "authentication is enabled (require_auth=True or SESSION_BUDDY_AUTH_ENABLED) but no "
            "secret is set: pass jwt_secret= or set SESSION_BUDDY_JWT_SECRET"
        )
    return secret


# The soft limit set when the hard one is unlimited (the kernel caps it at fs.nr_open anyway).
_FD_LIMIT_WHEN_UNLIMITED = 1 << 20


def raise_fd_limit(log: AnyLogger) -> None:
    """Lift the soft RLIMIT_NOFILE as far as the hard one allows: lws sizes its fd table from
    this limit when the context is created, and connections that are not clients yet (max_pending
    of them) need descriptors besides the max_clients clients. A low soft limit is what an
    attacker exhausts first; the hard limit is the operator's real choice."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _FD_LIMIT_WHEN_UNLIMITED if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:  # an unlimited hard limit above fs.nr_open
            log.debug("could not raise the open-file limit from %d: %s", soft, exc)
            return
        log.debug("raised the open-file limit from %d to %d", soft, wanted)


def _use_poll_loop() -> bool:
    """SESSION_BUDDY_EVENT_LOOP: "libev" (the default: epoll) or "poll" (lws's own poll(2) loop,
    a fallback for diagnosis; it costs O(clients) per wake-up)."""
    name = os.environ.get("SESSION_BUDDY_EVENT_LOOP", "").strip().lower() or "libev"
    if name not in ("libev", "poll"):
        raise ValueError(f"SESSION_BUDDY_EVENT_LOOP must be 'libev' or 'poll', not {name!r}")
    return name == "poll"


def _check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Load the certificate and key once with Python's ssl module, so that a bad file raises a
    precise FileNotFoundError / ssl.SSLError from start() instead of a generic failure."""
    if cert is None or key is None:
        return
    for path, what in ((cert, "certificate"), (key, "private key")):
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, f"TLS {what} not found", str(path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ssl.SSLError(exc.errno, f"TLS certificate {cert} or key {key} is unusable: {exc.reason or exc}") from None


def _bind_address(host: str) -> tuple[str | None, bool]:
    """(numeric interface address or None for all, disable_ipv6) for a host string."""
    if host == "localhost":
        return "127.0.0.1", True
    if host == "0.0.0.0":
        return None, True
    if host == "::":
        return None, False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(exc.errno, f"cannot resolve host {host!r}: {exc.strerror}") from None
        addr = ipaddress.ip_address(infos[0][4][0])
    if addr.version == 4:
        return str(addr), True
    return str(addr), False


def _core_role(role: str) -> int:
    """The C constant of a role name (one place per fact: the numbers live in csrc)."""
    return {"standalone": _core.ROLE_STANDALONE, "publisher": _core.ROLE_PUBLISHER,
            "edge": _core.ROLE_EDGE}[role]


def core_config(options: ServerOptions, secret: bytes | None, min_log_level: int) -> CoreConfig:
    """The CoreConfig for one start: checks the event-loop choice and the TLS files, resolves the
    host to a bind address (OSError when it cannot be), and names the Hosts a request may carry."""
    use_poll = _use_poll_loop()
    _check_tls_files(options.ssl_certfile, options.ssl_keyfile)
    iface, disable_ipv6 = _bind_address(options.host)
    cert, key = options.ssl_certfile, options.ssl_keyfile
    return CoreConfig(
        db_path=os.fspath(options.db_path), iface=iface, disable_ipv6=disable_ipv6,
        use_poll=use_poll, port=options.port, interval_s=options.update_interval,
        recovery_window_s=options.recovery_window,
        top_n=options.top_n, anomaly_threshold=options.anomaly_threshold,
        record_anomalies=options.record_anomalies, max_clients=options.max_clients,
        max_message_size=options.max_message_size, max_pending=options.max_pending,
        min_log_level=min_log_level, static_dir=str(DASHBOARD_DIR),
        ssl_certfile=None if cert is None else str(cert), ssl_keyfile=None if key is None else str(key),
        allowed_origins=options.allowed_origins,
        allowed_hosts=host_check_names(options.host, iface, options.allowed_hosts),
        jwt_secret=secret, role=_core_role(options.role),
        redis_host=None if options.redis is None else options.redis.host,
        redis_port=0 if options.redis is None else options.redis.port,
        redis_db=0 if options.redis is None else options.redis.db,
        redis_password=None if options.redis is None else options.redis.password,
        redis_prefix=options.redis_prefix,
        graphql_schema=schema_sdl(),
    )


def ensure_database(path: Path) -> None:
    """Create a missing DB (and its folders) with the migrations applied; leave existing files alone."""
    if path.exists():
        return
    from session_buddy.storage.migrations.base import MigrationManager

    MigrationManager(path).migrate()

