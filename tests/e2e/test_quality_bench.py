"""`completer bench quality --quick` with the real engine: the benchmark runs end to end (a few tasks)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.helpers import ALL_CORES

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
# shipped with the tests (12 tasks of each set), so that a fresh clone runs the same tasks
DATA = REPO / "tests" / "data" / "humaneval-infilling"


@pytest.mark.timeout(600)
def test_quality_benchmark_quick():
    done = subprocess.run([sys.executable, "-m", "completer", "bench", "quality", "--quick", "-n", "1", "--data", str(DATA),
                           "--cpu-threads-bind", ALL_CORES], capture_output=True, text=True, timeout=580, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("single-line", "multi-line", "random-span-light"):
        for row in ("plain FIM", "completer |", "completer, speculative k=5"):
            assert f"| {name} | {row}" in done.stdout, done.stdout
    assert "identical on 3/3 tasks" in done.stdout  # one task of each set
