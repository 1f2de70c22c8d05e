import pytest

from completer.bench.batch import GroupRecord, best_k, groups_for, suggest_limits, summarize_groups
from completer.bench.workloads import Task


def test_groups_take_distinct_tasks_in_order_and_wrap_around():
    tasks = [Task(str(i), "long", "", "") for i in range(5)]
    groups = groups_for(tasks, 2, 3)
    assert [[t.id for t in g] for g in groups] == [["0", "1"], ["2", "3"], ["4", "0"]]


def group(b, k, g, wall, tokens=100, drafted=0, accepted=0, identical=None):
    return GroupRecord(b, k, g, wall, tokens, wall, drafted, accepted, b if identical is None else identical)


def test_throughput_is_compared_with_k0_over_the_same_groups():
    rows = summarize_groups([group(2, 0, 0, 10.0), group(2, 0, 1, 30.0),
                             group(2, 5, 0, 5.0, drafted=50, accepted=40), group(2, 5, 1, 15.0, identical=1)])
    spec = next(r for r in rows if r["k"] == 5)
    assert spec["speedup"] == pytest.approx(2.0)
    assert spec["tokens_per_s"] == pytest.approx(200 / 20)
    assert spec["acceptance"] == pytest.approx(0.8)
    assert spec["identical"] == 3 and spec["requests"] == 4
    assert next(r for r in rows if r["k"] == 0)["acceptance"] is None


def rows_for(speedups: dict[int, dict[int, float]]) -> list[dict]:
    """{batch size: {k: speedup}} as summary rows."""
    return [{"batch_size": b, "k": k, "speedup": s} for b, ks in speedups.items() for k, s in ks.items()]


@pytest.mark.parametrize("speedups,expected", [
    ({1: {2: 1.2, 5: 1.4}, 2: {2: 1.2, 5: 1.1}, 3: {2: 1.01, 5: 0.9}}, {2: 2, 3: 0}),
    ({1: {2: 1.2, 5: 1.4}, 2: {2: 1.1, 5: 1.3}}, {}),  # k = 5 best everywhere: no cap
    ({1: {2: 0.9, 5: 0.8}}, {1: 0}),  # speculation never pays
    ({1: {2: 1.2, 5: 1.4}, 2: {2: 1.3, 5: 1.1}, 3: {2: 1.1, 5: 1.2}}, {2: 2}),  # a cap never rises again
    ({1: {2: 1.2, 5: 1.4}, 2: {2: 0.9, 5: 0.9}, 3: {2: 1.1, 5: 1.0}}, {2: 0}),  # nor does speculation, once off
])
def test_limits_cap_k_from_the_batch_size_where_a_smaller_k_wins(speedups, expected):
    assert suggest_limits(rows_for(speedups), max_k=5) == expected


@pytest.mark.parametrize("speedups,min_gain,expected", [
    ({2: 1.02, 5: 1.01}, 0.03, 0),  # within noise of the target alone
    ({2: 1.02, 5: 1.01}, 0.0, 2),
    ({2: 1.2, 5: 1.2}, 0.03, 2),  # a tie goes to the smaller k
])
def test_best_k(speedups, min_gain, expected):
    assert best_k(rows_for({1: speedups}), 1, min_gain) == expected
