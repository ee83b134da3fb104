"""Summarise AddressSanitizer/LeakSanitizer/UBSan logs and fail on any report that involves csrc/.

Usage: python tests/sanitizers/asan_report.py LOG_DIR

The interpreter itself is not instrumented and keeps some memory until exit, so leak
reports whose stacks never pass through the extension's own sources are counted but
not treated as failures. Every error report (use-after-free, overflow, UB...) fails.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["main"]

REPORT_START = re.compile(r"^(Direct|Indirect) leak of|^==\d+==ERROR: |runtime error: ")


def split_reports(text: str) -> list[str]:
    reports: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if REPORT_START.search(line) and current:
            reports.append("\n".join(current))
            current = []
        current.append(line)
    if current:
        reports.append("\n".join(current))
    return [r for r in reports if REPORT_START.search(r)]


def main(argv: list[str]) -> int:
    log_dir = Path(argv[1])
    ours: list[str] = []
    foreign_leaks = 0
    for log in sorted(log_dir.glob("*")):
        for report in split_reports(log.read_text(errors="replace")):
            is_leak = "leak of" in report.splitlines()[0]
            if "LeakSanitizer" in report and not is_leak:
                continue  # the "detected memory leaks" banner
            if not is_leak or "csrc/" in report:
                ours.append(f"{log.name}:\n{report}")
            else:
                foreign_leaks += 1
    print(f"sanitizer reports involving csrc/ or memory errors: {len(ours)}")
    print(f"leak reports outside csrc/ (interpreter, libraries): {foreign_leaks}")
    for report in ours[:20]:
        print("-" * 72)
        print(report)
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
