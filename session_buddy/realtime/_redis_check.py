"""The check start() makes before a publisher or an edge starts anything: Redis answers, takes the
password and the database.  The link itself runs in C on the service thread; this only turns an
unreachable Redis or a refused password into a precise exception while nothing is running yet."""

from __future__ import annotations

import errno
import socket
from typing import BinaryIO

from session_buddy.realtime._options import RedisTarget

__all__ = ["check_redis", "redis_display_url"]

_TIMEOUT_S = 3.0


def redis_display_url(target: RedisTarget) -> str:
    """The URL for messages, without the password."""
    return f"redis://{target.host}:{target.port}/{target.db}"


def _command(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _read_line(f: BinaryIO, url: str) -> bytes:
    line = f.readline(4096)
    if not line.endswith(b"\r\n"):
        raise ConnectionResetError(errno.ECONNRESET, "Redis closed the connection", url)
    return line[:-2]


def check_redis(target: RedisTarget) -> None:
    """Connect, AUTH (when a password is given), SELECT and PING, then disconnect.

    Raises OSError (ConnectionRefusedError, TimeoutError...) with filename set to the URL when Redis
    cannot be reached, and PermissionError when it refuses the password or needs one."""
    url = redis_display_url(target)
    steps: list[tuple[str, bytes]] = []
    if target.password is not None:
        steps.append(("AUTH", _command(b"AUTH", target.password.encode())))
    if target.db:
        steps.append(("SELECT", _command(b"SELECT", str(target.db).encode())))
    steps.append(("PING", _command(b"PING")))
    try:
        sock = socket.create_connection((target.host, target.port), timeout=_TIMEOUT_S)
    except socket.gaierror as exc:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve {target.host!r}: {exc.strerror}", url) from None
    except OSError as exc:
        raise type(exc)(exc.errno or errno.ECONNREFUSED, exc.strerror or str(exc), url) from None
    with sock, sock.makefile("rb") as f:
        try:
            sock.sendall(b"".join(cmd for _, cmd in steps))
            for name, _ in steps:
                line = _read_line(f, url)
                if line.startswith(b"-"):
                    text = line[1:].decode(errors="replace")
                    if text.startswith(("WRONGPASS", "NOAUTH", "ERR invalid password", "ERR AUTH")):
                        raise PermissionError(errno.EACCES, f"Redis refused {name}: {text}", url)
                    raise OSError(errno.EPROTO, f"Redis refused {name}: {text}", url)
        except TimeoutError:
            raise TimeoutError(errno.ETIMEDOUT, "Redis did not answer in time", url) from None
