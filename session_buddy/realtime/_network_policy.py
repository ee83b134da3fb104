"""The Host check against DNS rebinding: validating `allowed_hosts`, and the names a loopback
server answers to.

While the server is bound to a loopback address, only a local program or a page the browser
loaded from a local name can reach it; a rebinding attack reaches it under a foreign name. The
service thread therefore refuses (HTTP 403) any request whose Host header, without its port, is
not one of the names `host_check_names` returns.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

__all__ = ["host_check_names", "validate_allowed_hosts"]

_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")
# A DNS name (labels of letters, digits, hyphens, underscores) or an IPv4 address.
_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?")


def _normalize_host(value: str) -> str:
    """A host name as the Host header carries it without its port: lower case, IPv6 in brackets.
    ValueError when it is none."""
    text = value.strip().lower()
    if text != value.lower() or not text:
        raise ValueError(f"allowed_hosts holds an invalid host name: {value!r}")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        addr = ipaddress.ip_address(bare)
    except ValueError:
        if bare != text or len(text) > 253 or not _NAME.fullmatch(text):
            raise ValueError(
                f"allowed_hosts holds an invalid host name: {value!r} (a name or an address, "
                "without scheme or port)") from None
        return text
    return f"[{addr.compressed}]" if addr.version == 6 else str(addr)


def validate_allowed_hosts(value: Any) -> tuple[str, ...] | None:
    """None, or an iterable of host names (not a single string). TypeError / ValueError name
    the bad entry."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError("allowed_hosts must be a list of host names, not a single string")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"allowed_hosts must be an iterable of str or None, not {type(value).__name__}") from None
    names = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"allowed_hosts must hold str, not {type(item).__name__}")
        names.append(_normalize_host(item))
    return tuple(names)


def host_check_names(host: str, iface: str | None, allowed_hosts: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The Host names accepted while bound to `iface`, or None (no Host check) when the server
    listens on a non-loopback address or on every interface."""
    if iface is None:
        return None
    try:
        addr = ipaddress.ip_address(iface)
    except ValueError:
        return None
    if not addr.is_loopback and not (addr.version == 6 and addr.ipv4_mapped and addr.ipv4_mapped.is_loopback):
        return None
    names = list(_LOCAL_NAMES)
    for extra in (_normalize_host(host), f"[{addr.compressed}]" if addr.version == 6 else str(addr)):
        if extra not in names:
            names.append(extra)
    for name in allowed_hosts or ():
        if name not in names:
            names.append(name)
    return tuple(names)
