"""Builds and runs the plain-C unit tests in tests/c/ against csrc/: with ASan+UBSan, and under valgrind."""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
TESTS_C = Path(__file__).resolve().parent / "c"

# Each test program and the csrc/ files it exercises.
PROGRAMS: dict[str, list[str]] = {
    "test_client_msg": ["client_msg.c", "json_object.c", "history.c"],
    "test_gql_message": ["gql_message.c", "json_object.c"],
    "test_id_map": ["id_map.c"],
    "test_rate_limit": ["rate_limit.c"],
    "test_jwt": ["jwt.c", "json_object.c", "json_writer.c", "text_sanitize.c"],
    "test_json_writer": ["json_writer.c", "text_sanitize.c"],
    "test_timeutil": ["timeutil.c"],
    "test_text_sanitize": ["text_sanitize.c", "log.c", "event_queue.c"],
    "test_analytics": ["analytics.c", "history.c", "snapshot.c", "prom_metrics.c", "json_writer.c",
                       "timeutil.c", "text_sanitize.c"],
    "test_history": ["history.c", "recovery.c", "analytics.c", "snapshot.c", "prom_metrics.c",
                     "json_writer.c", "timeutil.c", "text_sanitize.c"],
    "test_prom_metrics": ["prom_metrics.c"],
    "test_state_codec": ["state_codec.c", "history.c", "snapshot.c", "prom_metrics.c", "json_writer.c", "timeutil.c",
                         "text_sanitize.c"],
    "test_handshake": ["handshake.c", "text_sanitize.c"],
    "test_pmdeflate": ["pmdeflate.c", "msgbuf.c", "rx_buffer.c", "json_writer.c", "text_sanitize.c"],
    "test_anomaly_watch": ["anomaly_watch.c", "snapshot.c", "prom_metrics.c", "json_writer.c",
                           "timeutil.c", "text_sanitize.c", "event_queue.c", "webhook_stats.c"],
    "test_gql_selection": ["gql_selection.c", "snapshot.c", "prom_metrics.c", "json_writer.c", "json_object.c",
                           "timeutil.c", "text_sanitize.c"],
}

# The extension's own warning set (setup.py), made fatal; _GNU_SOURCE as setup.py defines it.
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wshadow", "-Wstrict-prototypes", "-Werror", "-g"]
# Without -fno-sanitize-recover, UBSan reports and carries on, and the exit code stays 0.
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"]
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:strict_string_checks=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

# Under `make asan` this process runs with libasan preloaded; the compiler and the
# programs must not inherit that.
CLEAN_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PYTHONMALLOC")
}

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


@functools.cache
def lws_flags() -> tuple[str, ...]:
    out = subprocess.run(
        ["pkg-config", "--cflags", "--libs", "libwebsockets", "libcrypto", "zlib"],
        check=True, capture_output=True, text=True, env=CLEAN_ENV,
    )
    return tuple(shlex.split(out.stdout))


def compile_program(program: str, out: Path, extra: list[str]) -> None:
    sources = [str(TESTS_C / f"{program}.c"), *(str(CSRC / s) for s in PROGRAMS[program])]
    cmd = ["cc", *CFLAGS, *extra, f"-I{CSRC}", *sources, "-o", str(out), *lws_flags(), "-lm"]
    build = subprocess.run(cmd, capture_output=True, text=True, env=CLEAN_ENV)
    assert build.returncode == 0, f"build failed: {shlex.join(cmd)}\n{build.stderr}"


@functools.cache
def sanitizer_setup(probe_dir: str) -> tuple[list[str], dict[str, str]]:
    """The sanitizer flags and run environment this machine supports.

    A program that leaks on purpose must be reported by LeakSanitizer; where LSan
    cannot run (it needs ptrace, which some containers forbid) ASan+UBSan are
    kept without it, and where ASan cannot run at all the tests build plain.
    """
    src = Path(probe_dir) / "probe.c"
    exe = Path(probe_dir) / "probe"
    src.write_text("#include <stdlib.h>\nint main(void) { void *p = malloc(7); p = 0; return p != 0; }\n")
    build = subprocess.run(["cc", *SANITIZE, str(src), "-o", str(exe)], capture_output=True, text=True,
                           env=CLEAN_ENV)
    if build.returncode == 0:
        run = subprocess.run([str(exe)], capture_output=True, text=True, env={**CLEAN_ENV, **SANITIZER_ENV})
        if run.returncode != 0 and "LeakSanitizer" in run.stderr and "detected memory leaks" in run.stderr:
            return SANITIZE, SANITIZER_ENV
        no_leaks = {**SANITIZER_ENV, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0"}
        run = subprocess.run([str(exe)], capture_output=True, text=True, env={**CLEAN_ENV, **no_leaks})
        if run.returncode == 0:
            warnings.warn("LeakSanitizer is unusable here: C unit tests run with ASan+UBSan but no leak check")
            return SANITIZE, no_leaks
    warnings.warn("ASan is unusable here: C unit tests are built without sanitizers")
    return [], {}


def program_env(program: str, tmp_path: Path) -> dict[str, str]:
    """Extra environment for one program."""
    if program != "test_json_writer":
        return {}
    # The writer must emit "0.5" even under a locale whose decimal point is ",". Build
    # such a locale here so that the C test's check runs rather than skipping itself.
    locales = tmp_path / "locale"
    locales.mkdir()
    made = subprocess.run(["localedef", "-i", "de_DE", "-f", "UTF-8", str(locales / "de_DE.UTF-8")],
                          capture_output=True, text=True, env=CLEAN_ENV) if shutil.which("localedef") else None
    if made is None or made.returncode != 0:
        return {}
    return {"LOCPATH": str(locales), "SB_REQUIRE_LOCALE": "1"}


def run_program(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**CLEAN_ENV, **env})


def test_every_c_test_is_listed() -> None:
    found = {p.stem for p in TESTS_C.glob("test_*.c")}
    assert found == set(PROGRAMS), f"tests/c/ and PROGRAMS disagree: {sorted(found ^ set(PROGRAMS))}"


@needs_cc
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_c_program_sanitized(program: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    flags, env = sanitizer_setup(str(tmp_path_factory.getbasetemp()))
    binary = tmp_path / program
    compile_program(program, binary, flags)
    run = run_program([str(binary)], {**env, **program_env(program, tmp_path)})
    assert run.returncode == 0, f"{program} exited {run.returncode}\n{run.stdout}{run.stderr}"


@needs_cc
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_c_program_valgrind(program: str, tmp_path: Path) -> None:
    binary = tmp_path / program
    compile_program(program, binary, ["-O0"])  # valgrind and ASan do not mix: a plain build
    cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full", "--show-leak-kinds=all",
           "--errors-for-leak-kinds=all", str(binary)]
    run = run_program(cmd, program_env(program, tmp_path))
    assert run.returncode == 0, f"{program} under valgrind exited {run.returncode}\n{run.stdout}{run.stderr}"
