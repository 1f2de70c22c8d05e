"""`completer bench typing --quick` with the real server and engine: replayed keystrokes end to end."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine


@pytest.mark.timeout(900)
def test_typing_benchmark_quick():
    done = subprocess.run([sys.executable, "-m", "completer", "bench", "typing", "--quick"],
                          capture_output=True, text=True, timeout=880, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| | no reuse | completer |" in out, out
    assert "| requests sent | 12 | 12 |" in out, out
    assert "| stale answers (made for another document version) | 0 | 0 |" in out, out
    # every request was answered or cancelled, in both modes
    answered = re.search(r"\| answered \| (\d+) \| (\d+) \|", out)
    cancelled = re.search(r"\| cancelled \(superseded by the next keystroke\) \| (\d+) \| (\d+) \|", out)
    assert answered and cancelled, out
    assert [int(a) + int(c) for a, c in zip(answered.groups(), cancelled.groups())] == [12, 12], out
    assert int(answered.group(2)) >= 1  # at least the last keystroke got its suggestion
