"""Where the benchmark tasks come from: HumanEval-infilling's folder, and a run without it."""

from pathlib import Path

import pytest

from completer.bench import workloads
from completer.bench.workloads import LONG, SHORT

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "humaneval-infilling"


def test_the_environment_names_the_folder_first(monkeypatch, tmp_path):
    monkeypatch.setenv(workloads.DATA_ENV, str(tmp_path))
    assert workloads.default_data_dir() == tmp_path


def test_a_named_folder_that_does_not_exist_is_passed_over(monkeypatch, tmp_path):
    monkeypatch.setenv(workloads.DATA_ENV, str(tmp_path / "missing"))
    assert workloads.default_data_dir() != tmp_path / "missing"


@pytest.mark.parametrize("with_data, classes", [(True, {SHORT, LONG}), (False, {LONG})])
def test_tasks_with_and_without_humaneval(monkeypatch, capsys, with_data, classes):
    if not with_data:
        monkeypatch.setattr(workloads, "default_data_dir", lambda: None)
    tasks = workloads.load_tasks(8, data_dir=SAMPLE if with_data else None)
    assert {t.length_class for t in tasks} == classes
    warned = "HumanEval-infilling not found" in capsys.readouterr().err
    assert warned is not with_data
