"""The pure parts of scripts/cpu_runtime_bench.py: core counts, the summary rows and the ratios."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cpu_runtime_bench.py"
spec = importlib.util.spec_from_file_location("cpu_runtime_bench", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.mark.parametrize("bind, cores", [("0", 1), ("0-1", 2), ("1", 1), ("0,2-3", 3), ("0-14", 15)])
def test_cores_of(bind, cores):
    assert bench.cores_of(bind) == cores


def record(runtime, bind, load, cls, latency, first=0.5, tokens=10, drafted=0, accepted=0, rate=None, other=0.0):
    return {"runtime": runtime, "bind": bind, "load": load, "class": cls, "latency_s": latency,
            "first_token_s": first, "tokens": tokens, "draft_tokens": drafted, "accepted_tokens": accepted,
            "busy_rate": rate, "other_cpu_s": other}


def test_summary_rows_and_ratios():
    g, i = bench.GNU, bench.INTEL
    records = [
        record(g, "0", "idle", "short", 1.0), record(g, "0", "idle", "short", 3.0), record(g, "0", "idle", "short", 2.0),
        # 128 tokens: 127 after the first in 12.7 s → 10 tok/s
        record(g, "0", "idle", "long", 13.2, first=0.5, tokens=128, drafted=100, accepted=60, other=1.32),
        record(g, "0", "busy", "short", 2.0, rate=0.5),
        record(g, "0", "busy", "long", 25.9, first=0.5, tokens=128, rate=1.0),  # 5 tok/s
        record(i, "0-1", "idle", "short", 0.5),
        record(i, "0-1", "idle", "long", 6.85, first=0.5, tokens=128),  # 20 tok/s
    ]
    rows = {r["config"]: r for r in bench.with_ratios(bench.summarize(records))}
    base = rows["GNU OpenMP, 1 core, idle"]
    assert base["short_p50_s"] == 2.0 and base["long_decode_tok_s"] == pytest.approx(10.0)
    assert base["acceptance"] == pytest.approx(0.6) and base["busy_work_share"] is None
    assert base["x_short"] == 1.0 and base["x_long"] == pytest.approx(1.0)
    assert base["other_cpu_cores"] == pytest.approx(1.32 / 19.2)
    busy = rows["GNU OpenMP, 1 core, busy"]
    # weighted by time: (0.5 * 2 + 1.0 * 25.9) / 27.9
    assert busy["busy_work_share"] == pytest.approx(26.9 / 27.9)
    assert busy["long_decode_tok_s"] == pytest.approx(5.0)
    fast = rows["Intel OpenMP, 2 cores, idle"]
    assert fast["x_short"] == pytest.approx(4.0) and fast["x_long"] == pytest.approx(2.0)
    assert fast["acceptance"] is None


def test_ratios_without_a_default_row_are_none():
    rows = bench.with_ratios(bench.summarize([record(bench.INTEL, "0", "busy", "short", 1.0)]))
    assert rows[0]["x_short"] is None and rows[0]["x_long"] is None


@pytest.mark.parametrize("a, b, expected", [
    ([1, 2, 3], ["x"], [1, "x", 2, 3]), ([1], ["x", "y"], [1, "x", "y"]), ([], [], []),
])
def test_interleaved(a, b, expected):
    assert bench.interleaved(a, b) == expected


def test_others_leave_out_mine_and_the_idle():
    before = {1: ("a", 1.0), 2: ("mine", 0.0), 3: ("idle", 5.0)}
    after = {1: ("a", 4.0), 2: ("mine", 9.0), 3: ("idle", 5.5), 4: ("new", 2.0)}
    assert bench.others(before, after, mine={2}) == [{"command": "a", "cpu_s": 3.0}, {"command": "new", "cpu_s": 2.0}]


def test_busy_rates_against_the_least_disturbed_baseline():
    records = [record(bench.GNU, "0", "busy", "short", 1.0, rate=0.9), record(bench.INTEL, "0", "busy", "short", 1.0, rate=1.4),
               record(bench.INTEL, "0", "idle", "short", 1.0)]
    out = bench.common_baseline(records, {(bench.GNU, "0"): 2000.0, (bench.INTEL, "0"): 1000.0})
    assert [r["busy_rate"] for r in out] == [0.9, 0.7, None]
    assert records[1]["busy_rate"] == 1.4  # the input is left as it was


def test_rows_keep_only_the_tasks_every_engine_answered():
    g, i = bench.GNU, bench.INTEL
    records = [record(g, "0", load, "short", 1.0) | {"task": t} for t in ("a", "b") for load in ("idle", "busy")]
    records += [record(i, "0-1", load, "short", 1.0) | {"task": "a"} for load in ("idle", "busy")]
    assert {r["task"] for r in bench.common_tasks(records)} == {"a"}
    assert len(bench.common_tasks(records)) == 4
