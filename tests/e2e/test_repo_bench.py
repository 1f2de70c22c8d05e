"""`completer bench quality --set repo --quick` with the real engine, on a tiny git repository made here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from completer.bench import repo_tasks
from completer.bench.repo_tasks import BLOCK_COL0, BLOCK_INDENT, SINGLE_LINE
from tests.e2e.helpers import ALL_CORES

pytestmark = pytest.mark.engine

REPO = Path(__file__).resolve().parents[2]
PYTHON = '''\
def mean(values):
    """The arithmetic mean of a non-empty list."""
    total = sum(values)
    return total / len(values)


def clamp(value, low, high):
    if value < low:
        value = low
        return value
    return min(value, high)
'''
GO = '''\
package stats

func Sum(values []int) int {
\ttotal := 0
\tfor _, v := range values {
\t\ttotal += v
\t}
\treturn total
}
'''


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.timeout(600)
def test_repo_benchmark_quick(tmp_path):
    clone = tmp_path / "repos" / "local+tiny"
    clone.mkdir(parents=True)
    (clone / "mean.py").write_text(PYTHON)
    (clone / "sum.go").write_text(GO)
    _git("init", "-q", cwd=clone)
    _git("add", ".", cwd=clone)
    _git("commit", "-qm", "tiny", cwd=clone)
    commit = _git("rev-parse", "HEAD", cwd=clone)
    tasks = (repo_tasks.make_tasks([("mean.py", PYTHON)], "local/tiny", commit, "python", 0, 1, 1)
             + repo_tasks.make_tasks([("sum.go", GO)], "local/tiny", commit, "go", 0, 1, 1))
    # three holes: a single-line one in Python, a block after Enter in Go, a block at column 0 in Python
    chosen = [next(t for t in tasks if (t.language, t.kind) == wanted)
              for wanted in (("python", SINGLE_LINE), ("go", BLOCK_INDENT), ("python", BLOCK_COL0))]
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_text(repo_tasks.dump_tasks(chosen, [{"repo": "local/tiny", "commit": commit, "language": "python"}],
                                                seed=0))
    done = subprocess.run([sys.executable, "-m", "completer", "bench", "quality", "--set", "repo", "--quick",
                           "--repos-dir", str(tmp_path / "repos"), "--tasks", str(tasks_file),
                           "--cpu-threads-bind", ALL_CORES], capture_output=True, text=True, timeout=580, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    for language, kind in (("python", "single-line"), ("go", "block-indent"), ("python", "block-col0")):
        for row in ("plain FIM", "completer"):
            assert f"| {language} | {kind} | {row} | 1 |" in done.stdout, done.stdout
    summary = json.loads(done.stdout[done.stdout.index("\n{") + 1:done.stdout.rindex("}") + 1])
    oracle = "completer's cuts on the removed text"
    assert set(summary) == {"plain FIM", "completer", oracle}
    for name, row in summary.items():
        assert row["single_line_tasks"] == 1 and row["block_tasks"] == 2
        assert 0.0 <= row["block_edit_similarity"] <= 1.0 and (row["mean_latency_s"] > 0) is (name != oracle)
    # the removed text itself, followed by the file's own code, comes out of the cuts whole
    assert summary[oracle]["block_exact_match"] == 1.0 and summary[oracle]["single_line_exact_match"] == 1.0


def test_a_wrong_checkout_is_refused(tmp_path):
    clone = tmp_path / "repos" / "local+tiny"
    clone.mkdir(parents=True)
    (clone / "mean.py").write_text(PYTHON)
    _git("init", "-q", cwd=clone)
    _git("add", ".", cwd=clone)
    _git("commit", "-qm", "tiny", cwd=clone)
    commit = _git("rev-parse", "HEAD", cwd=clone)
    tasks = repo_tasks.make_tasks([("mean.py", PYTHON + "# changed\n")], "local/tiny", commit, "python", 0, 1, 0)
    tasks_file = tmp_path / "tasks.json"
    tasks_file.write_text(repo_tasks.dump_tasks(tasks, [{"repo": "local/tiny", "commit": commit, "language": "python"}],
                                                seed=0))
    done = subprocess.run([sys.executable, "-m", "completer", "bench", "quality", "--set", "repo", "--quick",
                           "--repos-dir", str(tmp_path / "repos"), "--tasks", str(tasks_file)],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode != 0 and "differs from the one the holes were cut in" in done.stderr, done.stderr
