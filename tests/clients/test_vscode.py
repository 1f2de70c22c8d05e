"""The VS Code extension (editor-clients/vscode): its unit tests, the .vsix, and the end-to-end test.

All of it is editor-clients/vscode/test.sh: the packaged extension installed in a real VS Code
(code-server), driven by headless Chromium, completing a Python file with the real server and
engine, accepting with Tab and checking the saved file; it saves a screenshot, vscode.png (in a
temporary folder; in docs/screenshots/ with COMPLETER_REFRESH_SCREENSHOTS=1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clients.screenshots import screenshot_path

pytestmark = [pytest.mark.engine, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "editor-clients" / "vscode" / "test.sh"
SCREENSHOT = screenshot_path("vscode.png")  # docs/screenshots/ only with COMPLETER_REFRESH_SCREENSHOTS=1


def test_vscode_extension():
    started = SCREENSHOT.stat().st_mtime if SCREENSHOT.exists() else 0
    env = {**os.environ, "COMPLETER_PYTHON": sys.executable,  # this venv's server
           "COMPLETER_SCREENSHOT": str(SCREENSHOT)}
    proc = subprocess.run([str(SCRIPT)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1400)
    tail = "\n".join(proc.stdout.splitlines()[-80:])
    assert proc.returncode == 0, f"test.sh exited with {proc.returncode}:\n{tail}"
    assert "# fail 0" in proc.stdout, f"unit tests:\n{tail}"
    assert "[e2e" in proc.stdout and "PASS" in proc.stdout, f"end-to-end test:\n{tail}"
    assert SCREENSHOT.exists() and SCREENSHOT.stat().st_mtime > started, "no new screenshot"
