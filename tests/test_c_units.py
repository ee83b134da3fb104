"""Builds and runs the plain-C unit tests in tests/c/ with ASan and UBSan, against csrc/."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"

# Each test program and the csrc/ files it exercises.
PROGRAMS = {
    "test_json_writer": ["json_writer.c"],
    "test_timeutil": ["timeutil.c"],
    "test_client_msg": ["client_msg.c"],
}

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]


# Under `make asan` this process runs with libasan preloaded; the compiler must not inherit that.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC")}


def lws_flags() -> list[str]:
    out = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libwebsockets"], check=True, capture_output=True, text=True,
        env=CLEAN_ENV,
    )
    return shlex.split(out.stdout)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_c_program(program: str, tmp_path: Path) -> None:
    binary = tmp_path / program
    sources = [str(ROOT / "tests" / "c" / f"{program}.c"), *(str(CSRC / s) for s in PROGRAMS[program])]
    build = subprocess.run(
        ["cc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-g", *SANITIZE,
         f"-I{CSRC}", *sources, "-o", str(binary), *lws_flags(), "-lm"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60,
                         env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"})
    assert run.returncode == 0, run.stdout + run.stderr
