"""Figures the hardening tests report (sequences run, fuzz cases sent, faults survived, latencies).

They are printed at the end of the run and, when COMPLETER_HARDENING_REPORT names a file,
appended to it as JSON lines.
"""

import json
import os
import time

FIGURES: dict[str, object] = {}


def record(name: str, value) -> None:
    if isinstance(value, (int, float)) and isinstance(FIGURES.get(name), (int, float)):
        value = FIGURES[name] + value  # counts add up over tests
    FIGURES[name] = value


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("hardening figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
    path = os.environ.get("COMPLETER_HARDENING_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **FIGURES}) + "\n")
