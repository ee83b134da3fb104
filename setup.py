"""Declares the C extension; all other metadata lives in pyproject.toml."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup

# hiredis: the Redis client of role publisher and edge (SPEC section 10); its async API has a
# libev adapter, so Redis runs on the loop lws already runs, off the GIL's thread.
# zlib: the server compresses permessage-deflate frames itself, once per group (csrc/pmdeflate.c).
REQUIRED = {"libwebsockets": "libwebsockets-dev", "sqlite3": "libsqlite3-dev", "libcrypto": "libssl-dev",
            "hiredis": "libhiredis-dev", "zlib": "zlib1g-dev"}


def pkg_config(*args: str) -> list[str]:
    """Flags from pkg-config for every REQUIRED library; exit with one clear line if one is missing."""
    for lib, deb in REQUIRED.items():
        try:
            found = subprocess.run(["pkg-config", "--exists", lib]).returncode == 0
        except FileNotFoundError:
            sys.exit("error: pkg-config not found: install it (apt-get install pkg-config)")
        if not found:
            sys.exit(f"error: {lib} development files not found: install them (apt-get install {deb})")
    out = subprocess.run(["pkg-config", *args, *REQUIRED], check=True, capture_output=True, text=True)
    return shlex.split(out.stdout)


def require_header(header: str, deb: str, cflags: list[str]) -> None:
    """Exit with one clear line when the C compiler cannot find header (libev has no pkg-config file)."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    try:
        probe = subprocess.run([*cc, *cflags, "-E", "-x", "c", "-"], input=f"#include <{header}>\n",
                               capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit(f"error: C compiler {cc[0]} not found: install it (apt-get install gcc)")
    if probe.returncode != 0:
        sys.exit(f"error: {header} not found: install it (apt-get install {deb})")


sources = sorted(str(p) for p in Path("csrc").glob("*.c"))
cflags = pkg_config("--cflags")
libs = pkg_config("--libs")
require_header("ev.h", "libev-dev", cflags)

setup(
    ext_modules=[
        Extension(
            "session_buddy.realtime._core",
            sources=sources,
            include_dirs=["csrc"],
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes", *cflags],
            # libev has no pkg-config file; Debian's libwebsockets-dev depends on libev-dev.
            extra_link_args=[*libs, "-lev", "-lpthread"],
            define_macros=[("_GNU_SOURCE", "1")],
        )
    ],
)
