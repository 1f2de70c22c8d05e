import gzip
import json
import random

import pytest

from completer.bench import overhead, quality
from completer.bench.quality import COMPLETER, PLAIN, SPECULATIVE, Record, Task, extra_rows


@pytest.mark.parametrize("completion,solution,exact,similarity", [
    ("    return x\n", "    return x", True, 1.0),
    ("    return x  \n\n", "    return x\n", True, 1.0),
    ("    return y", "    return x", False, 1 - 1 / 8),  # compared without the indentation
    ("", "abc", False, 0.0),
])
def test_exact_match_and_edit_similarity(completion, solution, exact, similarity):
    assert quality.exact_match(completion, solution) is exact
    assert quality.edit_similarity(completion, solution) == pytest.approx(similarity)


TASK = Task("t/1", "single-line", "def add(a, b):\n", "\n", "    return a + b\n",
            "def check(f):\n    assert f(1, 2) == 3\n", "add")


@pytest.mark.parametrize("source,passed", [
    (quality.program(TASK, "    return a + b"), True),
    (quality.program(TASK, "    return a - b"), False),
    ("import socket\nsocket.create_connection(('127.0.0.1', 9))\n", False),  # no network
    ("while True: pass\n", False),  # the timeout
])
def test_run_tests(source, passed):
    assert quality.run_tests(source, timeout=3) is passed


def test_summaries_and_identity():
    recs = [Record("t/1", "single-line", PLAIN, "x", False, 0.5, False),
            Record("t/1", "single-line", COMPLETER, "y", True, 1.0, True),
            Record("t/1", "single-line", SPECULATIVE, "y", True, 1.0, True),
            Record("t/2", "single-line", COMPLETER, "a", False, 0.0, False),
            Record("t/2", "single-line", SPECULATIVE, "b", False, 0.0, False)]
    rows = {r["row"]: r for r in quality.summarize(recs)}
    assert rows[PLAIN]["pass@1"] == 0.0 and rows[COMPLETER]["pass@1"] == 0.5 and rows[COMPLETER]["n"] == 2
    assert quality.identical_count(recs) == (1, 2)
    meta = {"machine": "m", "vllm": "v", "target": "t", "draft": "d", "n": 2, "seed": 0, "max_tokens": 8, "wall_s": 1}
    md = quality.markdown(quality.summarize(recs), (1, 2), meta)
    assert "| single-line | completer | 2 | 50.0% |" in md and "identical on 1/2" in md


def test_load_samples_each_set(tmp_path):
    for name in quality.SETS.values():
        rows = [{"task_id": f"{name}/{i}", "prompt": "p", "suffix": "s", "canonical_solution": "c", "test": "t",
                 "entry_point": "e"} for i in range(5)]
        with gzip.open(tmp_path / f"HumanEval-{name}.jsonl.gz", "wt") as f:
            f.write("\n".join(json.dumps(r) for r in rows))
    tasks = quality.load(tmp_path, 3, seed=1)
    assert len(tasks) == 9 and {t.set for t in tasks} == set(quality.SETS) - set(quality.DERIVED_SETS)
    assert tasks == quality.load(tmp_path, 3, seed=1)  # seeded


@pytest.mark.parametrize("line, starts", [
    ("    return f(x)\n", [11, 13]),  # after "return ", after "("
    ("x = [a, b]\n", [2, 4, 5, 8]),
    ("    pass\n", []),  # one word: nowhere inside
])
def test_mid_line_starts(line, starts):
    assert quality.mid_line_starts(line) == starts


def test_mid_line_task_moves_the_cursor_into_the_solution_line():
    task = quality.Task("t/1", "single-line", "def f(x):\n", "\n", "    return f(x)\n", "test", "f")
    moved = quality.mid_line_task(task, random.Random(0))
    j = len(moved.prompt) - len(task.prompt)
    assert moved.prompt + moved.solution + moved.suffix == task.prompt + task.solution + task.suffix
    assert j in (11, 13) and moved.suffix == "\n\n"  # the line's break stays in the document
    assert moved.id == f"t/1@{j}" and moved.set == "single-line-mid"


def test_overhead_runs_and_writes_its_report(tmp_path):
    assert overhead.synthetic_module(300).count("\n") == 300
    result = overhead.run(40, 400, tmp_path)
    assert result["keystrokes"] == 40 and result["request_ms"]["p95"] > 0
    assert (tmp_path / "overhead.md").read_text().startswith("# Overhead")
    assert (tmp_path / "overhead.png").stat().st_size > 0


@pytest.mark.parametrize("spm, anchors, expected", [
    (False, (), {}),
    (False, ("cursor", "block"), {"completer, FIM prefix to the cursor": {"fim_middle_anchor": "cursor"},
                                  "completer, FIM prefix to the block start": {"fim_middle_anchor": "block"}}),
    (True, ("line",), {"completer, suffix first (SPM)": {"fim_order": "spm"},
                       "completer, FIM prefix to the line start": {"fim_middle_anchor": "line"}}),
    (False, ("indentation",), {"completer, FIM prefix to the block start only after indentation":
                               {"fim_middle_anchor": "indentation"}}),
])
def test_extra_rows(spm, anchors, expected):
    assert extra_rows(spm, anchors) == expected
