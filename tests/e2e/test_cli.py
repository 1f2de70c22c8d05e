"""`completer complete` end to end: stdin, --json, the real engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.engine

SOURCE = 'def add(a, b):\n    """Return the sum of a and b."""\n    \n'


def test_complete_from_stdin_prints_json_with_measurements():
    run = subprocess.run([sys.executable, "-m", "completer", "complete", "--json", "--language", "python", "-:3:5"],
                         input=SOURCE, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert "return" in out["completion"] and "a" in out["completion"]
    assert out["kind"] == "multi_line" and out["speculation"] is True
    assert out["generated_tokens"] > 0 and out["latency_s"] > 0
    assert out["draft_tokens"] > 0 and 0 <= out["acceptance_rate"] <= 1
