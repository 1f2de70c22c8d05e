"""`completer bench quality --quick` with the real engine: the benchmark runs end to end (a few tasks)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from completer.bench.workloads import default_data_dir

pytestmark = pytest.mark.engine


@pytest.mark.timeout(600)
def test_quality_benchmark_quick():
    data = default_data_dir()
    if data is None:
        pytest.skip("no HumanEval-infilling data next to the checkout")
    done = subprocess.run([sys.executable, "-m", "completer", "bench", "quality", "--quick", "--data", str(data)],
                          capture_output=True, text=True, timeout=580, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("single-line", "multi-line", "random-span-light"):
        for row in ("plain FIM", "completer |", "completer, speculative k=5"):
            assert f"| {name} | {row}" in done.stdout, done.stdout
    assert "identical on 6/6 tasks" in done.stdout
