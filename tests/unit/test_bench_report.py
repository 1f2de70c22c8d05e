import pytest

from completer.bench.report import Record, markdown, percentile, summarize


@pytest.mark.parametrize("values,q,expected", [
    ([], 50, 0.0),
    ([3.0], 95, 3.0),
    ([1, 2, 3, 4], 50, 2),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95, 10),
])
def test_percentile(values, q, expected):
    assert percentile(values, q) == expected


def rec(config, task, latency, tokens=10, drafted=0, accepted=0, steps=0, identical=None, cls="long"):
    return Record(config, task, cls, latency, 0.1, tokens, drafted, accepted, steps, identical)


def test_summary_pairs_tasks_with_the_baseline():
    records = [
        rec("base", "a", 2.0), rec("base", "b", 4.0),
        rec("spec", "a", 1.0, drafted=30, accepted=24, steps=10, identical=True),
        rec("spec", "b", 2.0, drafted=30, accepted=15, steps=10, identical=False),
    ]
    rows = {r["config"]: r for r in summarize(records, "base")}
    spec = rows["spec"]
    assert spec["speedup"] == pytest.approx(2.0)
    assert spec["rejection_rate"] == pytest.approx(1 - 39 / 60)
    assert spec["mean_acceptance_length"] == pytest.approx(1 + 39 / 20)
    assert spec["greedy_identical"] == 1
    assert rows["base"]["speedup"] == pytest.approx(1.0) and rows["base"]["rejection_rate"] is None
    assert "| spec | long | 2 |" in markdown(list(rows.values()), "base")
