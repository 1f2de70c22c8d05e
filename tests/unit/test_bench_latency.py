import json

import pytest

from completer.bench.latency import (NGRAM_BASELINE, POLICY, finished_tasks, load_checkpoint, replay_acceptance,
                                      resumed_note, rotated, table_rows)
from completer.bench.report import Record
from completer.bench.workloads import Task
from completer.policy.acceptance import AcceptanceTracker, alpha_from_counts

CONFIGS = {"target alone": 0, "draft k=5": 5}


def rec(config, task, drafted=0, accepted=0):
    return Record(config, task, "long", 1.0, 0.1, 10, drafted, accepted, 2, None)


@pytest.mark.parametrize("records,expected", [
    ([], set()),
    ([rec("target alone", "a")], set()),  # stopped between two configs of a task
    ([rec("target alone", "a"), rec("draft k=5", "a")], {"a"}),
    ([rec("draft k=5", "a"), rec("target alone", "a"), rec("target alone", "b")], {"a"}),
])
def test_a_task_is_finished_when_every_config_answered(records, expected):
    assert finished_tasks(records, CONFIGS) == expected


def test_checkpoint_keeps_only_runs_with_the_same_arguments_and_skips_a_cut_line(tmp_path):
    path = tmp_path / "latency-checkpoint.jsonl"
    key = {"n": 200, "seed": 0}
    lines = [
        {"key": key, "engine": "draft", "records": [vars(rec("target alone", "a"))]},
        {"key": {"n": 40, "seed": 0}, "engine": "draft", "records": [vars(rec("target alone", "z"))]},
        {"key": key, "engine": "ngram", "records": [vars(rec("ngram k=5", "a"))]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"key": {"n": 2')
    done = load_checkpoint(path, key)
    assert [r.task for r in done["draft"]] == ["a"]
    assert [r.config for r in done["ngram"]] == ["ngram k=5"]
    assert load_checkpoint(tmp_path / "missing.jsonl", key) == {}
    assert load_checkpoint(None, key) == {}


def test_a_resumed_policy_starts_from_the_acceptance_the_finished_tasks_saw():
    tasks = [Task("a", "long", "", ""), Task("b", "long", "", "", language="rust")]
    records = [rec(POLICY, "a", drafted=20, accepted=10), rec("draft k=5", "a", drafted=20, accepted=20),
               rec(POLICY, "b", drafted=0)]
    tracker = AcceptanceTracker()
    replay_acceptance(records, tasks, tracker)
    assert tracker.alpha("python") == pytest.approx(0.7 * tracker.prior + 0.3 * alpha_from_counts(20, 10, 2))
    assert tracker.alpha("rust") == tracker.prior


@pytest.mark.parametrize("resumed,expected", [
    ({}, ""),
    ({"draft": 0}, ""),
    ({"draft": 170}, " for this part; 170 tasks of the draft engine came from an earlier run of the same command, resumed"),
    ({"ngram": 3, "draft": 200}, " for this part; 200 tasks of the draft engine and 3 tasks of the ngram engine came "
                                 "from an earlier run of the same command, resumed"),
])
def test_the_report_says_which_tasks_a_resumed_run_took_from_its_checkpoint(resumed, expected):
    assert resumed_note(resumed) == expected


@pytest.mark.parametrize("items,n,expected", [
    (["a", "b", "c"], 0, ["a", "b", "c"]),
    (["a", "b", "c"], 1, ["b", "c", "a"]),
    (["a", "b", "c"], 5, ["c", "a", "b"]),
    ([2, 5], 1, [5, 2]),
])
def test_rotated_starts_at_n_and_wraps(items, n, expected):
    assert rotated(items, n) == expected


def timed(config, latency):
    return Record(config, "a", "long", latency, 0.1, 10, 0, 0, 0, None)


@pytest.mark.parametrize("records, expected", [
    ([timed("target alone", 10.0), timed("draft k=5", 5.0)], {"target alone": 1.0, "draft k=5": 2.0}),
    # the ngram engine ran on a slower host: its ratio is against its own target alone, which stays in the table
    ([timed("target alone", 10.0), timed("draft k=5", 5.0), timed(NGRAM_BASELINE, 20.0), timed("ngram k=5", 16.0)],
     {"target alone": 1.0, "draft k=5": 2.0, NGRAM_BASELINE: 1.0, "ngram k=5": 1.25}),
])
def test_each_engine_is_compared_with_its_own_target_alone(records, expected):
    assert {r["config"]: r["speedup"] for r in table_rows(records)} == pytest.approx(expected)
