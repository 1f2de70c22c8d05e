"""Per-request speculation inside one engine: greedy output identical for bypass and every k."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.helpers import ALL_CORES

pytestmark = pytest.mark.engine


def test_bench_quick_outputs_are_identical_for_bypass_every_k_ngram_and_policy():
    # `bench latency --quick` runs target alone (k=0, draft model skipped), draft k=3/5/8, the
    # policy and ngram, and exits non-zero if any output differs from the target alone. Two
    # tasks: a single-line one (the policy bypasses it) and a multi-line one (it speculates).
    run = subprocess.run([sys.executable, "-m", "completer", "bench", "latency", "--quick", "-n", "2",
                          "--cpu-threads-bind", ALL_CORES], capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # 2 tasks x (k=3, k=5, k=8, policy, ngram) compared with the target alone
    assert "all 10 speculative outputs are token-identical to the target alone" in run.stdout, run.stdout
    for row in ("target alone", "draft k=3", "draft k=5", "draft k=8", "completer policy", "ngram k=5"):
        assert f"| {row} |" in run.stdout
