"""`completer draft eval --head`: rows from per-request records, and the files a head trained on."""

import json

import pytest

from completer.bench.draft_eval import code_cuts, first_difference, head_rows, trained_files
from completer.draft.cli import head_markdown


def record(tokens, latency_s, drafted=0, accepted=0, steps=0):
    return {"token_ids": tokens, "latency_s": latency_s, "drafted": drafted, "accepted": accepted, "steps": steps}


ALONE = [record([1, 2, 3, 4], 2.0), record([5, 6], 1.0)]


@pytest.mark.parametrize("k, runs, rate, length, measured, identical", [
    (3, [record([1, 2, 3, 4], 1.0, 6, 3, 2), record([5, 6], 0.5, 3, 0, 1)], 3 / 9, 2.0, 2.0, True),
    (5, [record([1, 2, 3, 4], 1.5, 5, 5, 1), record([5, 6], 1.5, 0, 0, 0)], 1.0, 6.0, 1.0, True),
    (8, [record([1, 2, 3, 9], 3.0, 8, 0, 4), record([5, 6], 3.0, 8, 0, 2)], 0.0, 1.0, 0.5, False),
])
def test_head_rows(k, runs, rate, length, measured, identical):
    (row,) = head_rows(ALONE, {k: runs}, draft_cost=0.15)
    assert row["k"] == k and row["requests"] == 2
    assert row["acceptance_rate"] == pytest.approx(rate)
    assert row["mean_acceptance_length"] == pytest.approx(length)
    assert row["projected_speedup"] == pytest.approx(length / (1 + k * 0.15))
    assert row["measured_speedup"] == pytest.approx(measured)
    assert row["identical"] is identical
    assert row["identical_requests"] == (2 if identical else 1)
    assert row["first_differences"] == ([] if identical else [3])


@pytest.mark.parametrize("expected, got, index", [
    ([1, 2, 3], [1, 2, 3], 3),
    ([1, 2, 3], [1, 9, 3], 1),
    ([1, 2, 3], [1, 2], 2),
    ([], [4], 0),
])
def test_first_difference(expected, got, index):
    assert first_difference(expected, got) == index


def test_head_rows_sorted_by_k_and_printed():
    runs = {8: [record([1, 2, 3, 4], 1.0, 8, 4, 2), record([5, 6], 1.0)], 3: ALONE}
    result = {"rows": head_rows(ALONE, runs, 0.15), "cuts": 2, "files_left_out": 7}
    assert [r["k"] for r in result["rows"]] == [3, 8]
    table = head_markdown(result, "t", "h")
    assert "7 files the head trained on left out" in table and "| 8 | 50.0% | 3.00 |" in table


def test_trained_files_only_for_the_folder_trained_on(tmp_path):
    code, other = tmp_path / "code", tmp_path / "other"
    code.mkdir(), other.mkdir()
    head = tmp_path / "run" / "head"
    head.mkdir(parents=True)
    assert trained_files(head, code) == frozenset()
    (tmp_path / "run" / "completer-draft.json").write_text(json.dumps(
        {"code_dir": str(code.resolve()), "files_trained": ["a.py", "b.py"]}))
    assert trained_files(head, code) == {"a.py", "b.py"}
    assert trained_files(head, other) == frozenset()


def test_code_cuts_leave_out_excluded_files(tmp_path):
    body = "".join(f"def f{i}(x):\n    return x + {i}  # long enough\n" for i in range(20))
    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text(body)
    assert {c.path for c in code_cuts(tmp_path, 10, exclude=frozenset({"a.py"}))} == {"b.py"}
