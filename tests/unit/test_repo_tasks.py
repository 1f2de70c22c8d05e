"""Holes cut from source with tree-sitter, the task file, the repositories' layouts and the report's scores."""

import json
import random
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from completer.bench import repo_bench, repo_report, repo_scoring, repo_sources, repo_tasks
from completer.bench.quality import PLAIN, mid_line_starts
from completer.bench.repo_scoring import RepoRecord
from completer.bench.repo_sources import SourceError
from completer.bench.repo_tasks import BLOCK_COL0, BLOCK_INDENT, SINGLE_LINE, RepoTask
from completer.context.prompt import QWEN
from completer.context.tokens import CharEstimateCounter

PYTHON = '''\
def f(x):
    """Doc string: a = b(c)."""
    if x:
        a = g(x, 1)
        return a
    return None
'''
GO = '''\
package m

func f(x int) int {
\tif x > 0 {
\t\ty := g(x, 1)
\t\treturn y
\t}
\treturn 0
}
'''
TYPESCRIPT = '''\
export function f(x: number): number {
  if (x > 0) {
    const y = g(x, 1);
    return y;
  }
  // a comment = here
  return 0;
}
'''
RUST = '''\
fn f(x: i32) -> i32 {
    if x > 0 {
        let y = g(x, 1);
        return y;
    }
    0
}
'''
JAVA = '''\
class A {
  int f(int x) {
    if (x > 0) {
      int y = g(x, 1);
      return y;
    }
    return 0;
  }
}
'''

# (language, source, the removed blocks, the lines that get a single-line hole)
CASES = [
    ("python", PYTHON,
     {'"""Doc string: a = b(c)."""\n    if x:\n        a = g(x, 1)\n        return a\n    return None',
      "a = g(x, 1)\n        return a"},
     {"        a = g(x, 1)", "        return a", "    return None"}),
    ("go", GO, {"if x > 0 {\n\t\ty := g(x, 1)\n\t\treturn y\n\t}\n\treturn 0", "y := g(x, 1)\n\t\treturn y"},
     {"\t\ty := g(x, 1)", "\t\treturn y", "\treturn 0"}),
    ("typescript", TYPESCRIPT,
     {"if (x > 0) {\n    const y = g(x, 1);\n    return y;\n  }\n  // a comment = here\n  return 0;",
      "const y = g(x, 1);\n    return y;"},
     {"    const y = g(x, 1);", "    return y;", "  return 0;"}),
    ("rust", RUST, {"if x > 0 {\n        let y = g(x, 1);\n        return y;\n    }\n    0",
                    "let y = g(x, 1);\n        return y;"},
     {"        let y = g(x, 1);", "        return y;"}),
    ("java", JAVA, {"if (x > 0) {\n      int y = g(x, 1);\n      return y;\n    }\n    return 0;",
                    "int y = g(x, 1);\n      return y;"},
     {"      int y = g(x, 1);", "      return y;", "    return 0;"}),
]


def _line_of(text: str, offset: int) -> str:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return text[start:len(text) if end < 0 else end]


@pytest.mark.parametrize("language,source,blocks,lines", CASES, ids=[c[0] for c in CASES])
def test_holes_per_language(language, source, blocks, lines):
    singles, pairs = repo_tasks.file_holes(source, language, random.Random(0))
    assert {source[indent.start:indent.end] for indent, _ in pairs} == blocks
    for indent, col0 in pairs:
        assert (indent.kind, col0.kind) == (BLOCK_INDENT, BLOCK_COL0) and indent.end == col0.end
        # after Enter: the body's indentation and nothing else on the line; at column 0: an empty line
        assert _line_of(source[:indent.start] + source[indent.end:], indent.cursor).strip() == ""
        assert col0.start == 0 or source[col0.start - 1] == "\n"
        assert source[col0.start:col0.end] == source[col0.start:indent.start] + source[indent.start:indent.end]
        assert not source[col0.start:indent.start].strip()
    assert {_line_of(source, h.cursor) for h in singles} == lines
    for hole in singles:
        line = _line_of(source, hole.cursor)
        line_start = source.rfind("\n", 0, hole.cursor) + 1
        assert hole.kind == SINGLE_LINE and hole.cursor - line_start in mid_line_starts(line)
        assert source[hole.end] == "\n"  # the rest of the line, its break left in place


@pytest.mark.parametrize("language,source", [
    ("python", "def f(x):\n    if x: return 1\n"),  # one-line bodies
    ("python", "def f(x):\n" + "    a = 1\n" * 13),  # too long
    ("go", "package m\n\nfunc f() {\n\ta(); b()\n}\n"),  # one line
    ("java", "class A {\n  void f() { a();\n    b(); }\n}\n"),  # braces not on lines of their own
    ("python", "def f(x:\n    return (\n"),  # syntax errors: no holes at all
])
def test_no_block_holes(language, source):
    assert repo_tasks.file_holes(source, language, random.Random(0))[1] == []


@pytest.mark.parametrize("language,source", [
    ("python", 'def f():\n    x = """\n    a = b(c)\n    """\n'),  # inside a string
    ("go", "package m\n\nfunc f() {\n\t// a = b(c)\n\tif x {\n\t}\n}\n"),  # a comment, a line that opens a block
    ("typescript", "const a = b(c);\n"),  # not in a function
    ("rust", "fn f() {}\n\n#[cfg(test)]\nmod tests {\n    fn t() {\n        let a = b(c);\n    }\n}\n"),  # inline tests
])
def test_no_single_line_holes(language, source):
    assert repo_tasks.file_holes(source, language, random.Random(0))[0] == []


@pytest.mark.parametrize("path,language,keep", [
    ("src/click/core.py", "python", True),
    ("tests/test_core.py", "python", False),
    ("src/conftest.py", "python", False),
    ("command.go", "go", True),
    ("command_test.go", "go", False),
    ("vendor/x/y.go", "go", False),
    ("source/core/Ky.ts", "typescript", True),
    ("source/types.d.ts", "typescript", False),
    ("test/retry.spec.ts", "typescript", False),
    ("crates/core/main.rs", "rust", True),
    ("crates/core/benches/b.rs", "rust", False),
    ("gson/src/main/java/A.java", "java", True),
    ("gson/src/test/java/ATest.java", "java", False),
    ("core.py", "go", False),
])
def test_is_source_path(path, language, keep):
    assert repo_tasks.is_source_path(path, language) is keep


@pytest.mark.parametrize("text,ordinary", [
    ("a = 1\n", True),
    ("// Code generated by x. DO NOT EDIT.\npackage m\n", False),
    ("a = 1\r\n", False),
    ("a = 1\n" * 2000, False),
])
def test_is_ordinary_text(text, ordinary):
    assert repo_tasks.is_ordinary_text(text) is ordinary


def _files() -> list[tuple[str, str]]:
    return [(f"pkg/m{i}.py", PYTHON) for i in range(3)] + [("tests/test_m.py", PYTHON)]


def test_make_tasks_is_seeded_and_spread():
    tasks = repo_tasks.make_tasks(_files(), "o/n", "c" * 40, "python", seed=0, n_single=3, n_block=2)
    assert tasks == repo_tasks.make_tasks(_files(), "o/n", "c" * 40, "python", seed=0, n_single=3, n_block=2)
    kinds = [t.kind for t in tasks]
    assert kinds == [SINGLE_LINE] * 3 + [BLOCK_INDENT] * 2 + [BLOCK_COL0] * 2
    assert len({t.path for t in tasks if t.kind == SINGLE_LINE}) == 3  # one file each while files last
    assert all(not t.path.startswith("tests/") and t.sha256 == repo_tasks.sha256(PYTHON) for t in tasks)
    # the two block kinds are the same holes
    assert [(t.path, t.end) for t in tasks if t.kind == BLOCK_INDENT] == [
        (t.path, t.end) for t in tasks if t.kind == BLOCK_COL0]


def test_task_file_round_trip_and_select(tmp_path):
    tasks = repo_tasks.make_tasks(_files(), "o/n", "c" * 40, "python", seed=0, n_single=3, n_block=2)
    repos = [{"repo": "o/n", "commit": "c" * 40, "language": "python"}]
    path = tmp_path / "tasks.json"
    path.write_text(repo_tasks.dump_tasks(tasks, repos, seed=0))
    assert repo_tasks.load_tasks(path) == (repos, tasks)
    picked = repo_tasks.select(tasks, {SINGLE_LINE: 2, BLOCK_INDENT: 1, BLOCK_COL0: 0})
    assert picked == tasks[:2] + tasks[3:4]


def test_shipped_task_file_loads():
    repos, tasks = repo_tasks.load_tasks()
    assert {r["language"] for r in repos} == {"python", "go", "typescript", "rust", "java"}
    assert len(repo_tasks.select(tasks, repo_bench.DEFAULT_COUNTS)) == 5 * sum(repo_bench.DEFAULT_COUNTS.values())


@pytest.mark.parametrize("content,error", [
    ("not json", "not a repository task file"),
    (json.dumps({"repos": []}), "not a repository task file"),
    (json.dumps({"repos": [], "tasks": [{"repo": "o/n", "commit": "c", "path": "p", "language": "python",
                                         "kind": "whole-file", "start": 0, "end": 1, "cursor": 0,
                                         "sha256": "s"}]}), "bad task"),
])
def test_load_tasks_rejects(tmp_path, content, error):
    path = tmp_path / "tasks.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=error):
        repo_tasks.load_tasks(path)


def test_cut():
    text = "def f():\n    return 1\n"
    task = RepoTask("o/n", "c", "p", "python", SINGLE_LINE, 20, 21, 20, "s")
    assert repo_tasks.cut(text, task) == ("def f():\n    return \n", 20, "1")


# ------------------------------------------------------------------ repositories


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main",
                           *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def source_repo(tmp_path) -> tuple[Path, str]:
    work = tmp_path / "work"
    (work / "pkg").mkdir(parents=True)
    (work / "pkg" / "m.py").write_text(PYTHON)
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "one", cwd=work)
    return work, _git("rev-parse", "HEAD", cwd=work)


@pytest.mark.parametrize("layout", ["owner+name/repo", "owner+name", "owner/name", "owner+name (bare)"])
def test_find_git_dir_layouts(tmp_path, source_repo, layout):
    work, commit = source_repo
    repos = tmp_path / "repos"
    place = repos / layout.split(" ")[0]
    place.parent.mkdir(parents=True)
    _git("clone", "-q", *(["--bare"] if layout != "owner/name" else []), str(work), str(place))
    git_dir = repo_sources.find_git_dir(repos, "owner/name")
    assert git_dir is not None and repo_sources.has_commit(git_dir, commit)
    assert repo_sources.read_text(git_dir, commit, "pkg/m.py") == PYTHON
    assert repo_sources.missing(repos, [{"repo": "owner/name", "commit": commit}]) == []


def test_missing_repos_are_named_with_clone_commands(tmp_path, source_repo):
    work, commit = source_repo
    _git("clone", "-q", "--bare", str(work), str(tmp_path / "repos" / "owner+name"))
    wanted = [{"repo": "owner/name", "commit": "f" * 40}, {"repo": "other/gone", "commit": commit}]
    absent = repo_sources.missing(tmp_path / "repos", wanted)
    assert absent == wanted  # a repository without the pinned commit counts as missing
    message = repo_sources.missing_message(tmp_path / "repos", absent)
    assert f"git clone https://github.com/other/gone {tmp_path / 'repos' / 'other+gone'}" in message
    assert "f" * 40 in message and commit in message


def test_a_changed_file_is_detected(tmp_path, source_repo):
    work, commit = source_repo
    repos = tmp_path / "repos"
    _git("clone", "-q", "--bare", str(work), str(repos / "owner+name"))
    tasks = repo_tasks.make_tasks([("pkg/m.py", PYTHON)], "owner/name", commit, "python", 0, 1, 1)
    texts = repo_sources.task_texts(repos, tasks)
    assert texts == {("owner/name", commit, "pkg/m.py"): PYTHON}
    wrong = [RepoTask(**{**t.__dict__, "sha256": repo_tasks.sha256(PYTHON + "\n")}) for t in tasks]
    with pytest.raises(SourceError, match="pkg/m.py at .* differs"):
        repo_sources.task_texts(repos, wrong)
    elsewhere = [RepoTask(**{**t.__dict__, "path": "pkg/gone.py"}) for t in tasks]
    with pytest.raises(SourceError, match="no pkg/gone.py"):
        repo_sources.task_texts(repos, elsewhere)


# ------------------------------------------------------------------ scores and report


@pytest.mark.parametrize("completion,expected,exact", [
    ("    a = 1\n    b = 2", "    a = 1\n    b = 2", True),
    ("    a = 1  \n    b = 2\n\n", "    a = 1\n    b = 2", True),
    ("\n    a = 1\n    b = 2", "    a = 1\n    b = 2", False),  # a leading empty line
    ("a = 1\n    b = 2", "    a = 1\n    b = 2", False),  # the first line's indentation missing
    ("\ta = 1", "    a = 1", False),
])
def test_exact_as_inserted(completion, expected, exact):
    assert repo_scoring.exact_as_inserted(completion, expected) is exact


@pytest.mark.parametrize("text,lines", [("", 0), ("\n  \n", 0), ("a", 1), ("\na\nb\n\n", 2)])
def test_line_count(text, lines):
    assert repo_scoring.line_count(text) == lines


def _record(row, language, kind, exact, empty=False, answer_lines=2, latency=1.0):
    return RepoRecord("t", "o/n", language, kind, row, exact, exact, 1.0 if exact else 0.5, empty, answer_lines, 3,
                      5, latency)


def test_summary_and_markdown():
    records = [_record(PLAIN, "python", SINGLE_LINE, True), _record(PLAIN, "python", BLOCK_INDENT, False, True, 0),
               _record(PLAIN, "go", BLOCK_COL0, True, answer_lines=3, latency=3.0),
               _record("completer", "python", SINGLE_LINE, False)]
    table, summary = repo_report.summarize(records)
    plain = summary[PLAIN]
    assert plain["single_line_exact_match"] == 1.0 and plain["block_exact_match"] == 0.5
    assert plain["empty_block_answers"] == 1 and plain["short_block_answers"] == 1 and plain["block_tasks"] == 2
    assert plain["block_col0_exact_match"] == 1.0 and plain["median_latency_s"] == 1.0
    assert summary["completer"]["block_tasks"] == 0 and summary["completer"]["block_exact_match"] is None
    rows = {(r["language"], r["kind"], r["row"]): r for r in table}
    assert rows[("all", BLOCK_COL0, PLAIN)]["n"] == 1 and rows[("python", SINGLE_LINE, PLAIN)]["empty_answers"] is None
    meta = {"command": "completer bench quality --set repo", "machine": "m", "vllm": "v", "target": "t",
            "completer_commit": "abc", "completer_changes": ["completer/x.py"],
            "repos": [{"repo": "o/n", "commit": "c" * 40, "language": "python"}],
            "counts": {SINGLE_LINE: 1}, "tasks": 3, "context_tokens": 1536, "max_tokens": 128, "wall_s": 1}
    md = repo_report.markdown(table, meta)
    assert "| python | block-indent | plain FIM | 1 | 0.0% | 0.0% | 0.500 | 1.00 | 1.00 | 1 | 1 |" in md
    assert "abc plus uncommitted changes to completer/x.py" in md and "o/n@cccccccccc (python)" in md


def test_plain_prompt_is_cut_at_lines_to_the_budget():
    lines = [f"line_{i:03d} = {i}\n" for i in range(200)]
    document = "".join(lines)
    cursor = document.index("line_100")
    completer = SimpleNamespace(settings=SimpleNamespace(context_tokens=100, prefix_share=0.75),
                                counter=CharEstimateCounter(), fim=QWEN)
    prompt = repo_bench.plain_prompt(completer, document, cursor)
    prefix = prompt.split(QWEN.prefix)[1].split(QWEN.suffix)[0]
    suffix = prompt.split(QWEN.suffix)[1].split(QWEN.middle)[0]
    assert document[:cursor].endswith(prefix) and prefix.startswith("line_") and prefix.endswith("\n")
    assert document[cursor:].startswith(suffix) and suffix.endswith("\n")
    counter = CharEstimateCounter()
    assert counter.count(prefix) <= 75 and counter.count(prefix) + counter.count(suffix) <= 100 + 10
    assert len(prefix) > 100 and len(suffix) > 20  # nearest the cursor, as much as the budget holds


STACK_WITH_HOLE = ("class Stack:\n    def push(self, item):\n", "\n\n    def pop(self):\n        return self.items.pop()\n")


@pytest.mark.parametrize("kind, before, expected, after", [
    # the removed body, then the file's own next method: the cuts keep exactly the body
    (BLOCK_COL0, STACK_WITH_HOLE[0], "        self.items.append(item)\n        self.size += 1", STACK_WITH_HOLE[1]),
    (BLOCK_INDENT, STACK_WITH_HOLE[0] + "        ", "self.items.append(item)", STACK_WITH_HOLE[1]),
    (SINGLE_LINE, "def f(xs):\n    return sum(", "xs)", "\n"),
])
def test_oracle_answer_is_the_removed_text_when_the_cuts_are_right(kind, before, expected, after):
    from completer.config import Settings
    from completer.pipeline import Completer
    from tests.unit.fake_engine import FakeEngine

    completer = Completer(FakeEngine(""), Settings())
    task = RepoTask("o/r", "c" * 40, "a.py", "python", kind, len(before), len(before), len(before), "")
    case = repo_scoring.Case(task, before + after, len(before), expected)
    assert repo_bench.oracle_answer(completer, case) == expected


@pytest.mark.parametrize("rows, expected_rows", [
    ((repo_bench.PLAIN, repo_bench.COMPLETER), {repo_bench.PLAIN, repo_bench.COMPLETER, repo_bench.ORACLE}),
    ((repo_bench.COMPLETER,), {repo_bench.COMPLETER, repo_bench.ORACLE}),
])
def test_generate_runs_the_rows_asked_for_and_keeps_raw_texts(monkeypatch, rows, expected_rows):
    import asyncio

    import completer.engine
    from completer.config import Settings
    from tests.unit.fake_engine import FakeEngine

    answer = "    self.items.append(item)\n\n    def pop(self):\n"
    monkeypatch.setattr(completer.engine, "start_engine", lambda settings: FakeEngine(answer))
    before, after = STACK_WITH_HOLE
    task = RepoTask("o/r", "c" * 40, "a.py", "python", BLOCK_COL0, len(before), len(before), len(before), "")
    case = repo_scoring.Case(task, before + after, len(before), "        self.items.append(item)")
    records, texts = asyncio.run(repo_bench._generate(Settings(), [case], lambda n: None, False, rows))
    assert {r.row for r in records} == expected_rows
    (kept,) = texts
    assert kept["expected"] == case.expected and set(kept["answers"]) == set(rows) == set(kept["raw"])
    raw = kept["raw"][repo_bench.COMPLETER]
    # the model's text before the cuts (the next method), the shown answer after them
    assert "def pop" in raw["text"] and "def pop" not in kept["answers"][repo_bench.COMPLETER]
    assert raw["kind"] == "multi_line" and raw["finish_reason"] is None  # None: completer stopped the stream


@pytest.mark.parametrize("args, counts, rows, writes", [
    ([], repo_bench.DEFAULT_COUNTS, (PLAIN, repo_bench.COMPLETER), True),
    (["--kind", "block-indent", "--kind", "block-col0"], {BLOCK_INDENT: 5, BLOCK_COL0: 5},
     (PLAIN, repo_bench.COMPLETER), False),
    (["--completer-only", "-n", "2"], {SINGLE_LINE: 2, BLOCK_INDENT: 2, BLOCK_COL0: 2}, (repo_bench.COMPLETER,), False),
])
def test_bench_quality_repo_runs_the_kinds_and_rows_asked_for(monkeypatch, tmp_path, args, counts, rows, writes):
    from click.testing import CliRunner

    from completer.cli import main

    seen = {}

    def fake_run(tasks_file, repos_dir, counts, out, **kwargs):
        seen.update(counts=counts, out=out, rows=kwargs["rows"])
        return {"rows": [], "summary": {}, "command": "c", "machine": "m", "vllm": "v", "target": "t",
                "repos": [], "counts": counts, "tasks": 0, "context_tokens": 1, "max_tokens": 1, "wall_s": 0}

    monkeypatch.setattr(repo_bench, "run", fake_run)
    result = CliRunner().invoke(main, ["bench", "quality", "--set", "repo", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert seen["counts"] == counts and seen["rows"] == rows and (seen["out"] == tmp_path) is writes


def test_bench_quality_kind_needs_the_repo_set():
    from click.testing import CliRunner

    from completer.cli import EXIT_BAD_INPUT, main

    result = CliRunner().invoke(main, ["bench", "quality", "--set", "multi-line", "--kind", "block-col0"])
    assert result.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize("shown, raw, expected, finish, line_prefix, cause", [
    ("a = 1\n    b = 2", "a = 1\n    b = 2", "a = 1\n    b = 2", "stop", "    ", repo_scoring.EXACT),
    ("", "", "a = 1\n    b = 2", "stop", "    ", repo_scoring.EMPTY),
    # the model wrote one line and its stop token
    ("a = 1", "a = 1", "a = 1\n    b = 2", "stop", "    ", repo_scoring.MODEL_ENDED),
    # the model closed the block after one line: a closing brace, or a line indented less
    ("a := 1", "a := 1\n\t}\n\tfoo()", "a := 1\n\t\tb := 2", None, "\t\t", repo_scoring.MODEL_CLOSED),
    ("a = 1", "a = 1\n\n    return a", "a = 1\n        b = 2", None, "        ", repo_scoring.MODEL_CLOSED),
    ("        a = 1", "        a = 1\n    return a", "        a = 1\n        b = 2", None, "", repo_scoring.MODEL_CLOSED),
    # the model went on in the block, the cuts kept one line
    ("a = 1", "a = 1\n    b = 2\n    c = 3", "a = 1\n    b = 2", None, "    ", repo_scoring.CUT_SHORT),
    # the stream was stopped right after the answer: not the model's end
    ("a = 1", "a = 1\n", "a = 1\n    b = 2", None, "    ", repo_scoring.CUT_SHORT),
    ("a = 1\n    b = 2\n    c = 3", "a = 1\n    b = 2\n    c = 3", "a = 1\n    b = 2", "stop", "    ",
     repo_scoring.LONGER),
    ("a = 9\n    b = 2", "a = 9\n    b = 2", "a = 1\n    b = 2", "stop", "    ", repo_scoring.OTHER_CODE),
])
def test_miss_cause(shown, raw, expected, finish, line_prefix, cause):
    assert repo_scoring.miss_cause(shown, raw, expected, finish, line_prefix) == cause


def test_causes_are_counted_in_the_summary_and_the_report():
    records = [_record("completer", "go", BLOCK_INDENT, False), _record("completer", "go", BLOCK_COL0, True),
               _record(PLAIN, "go", BLOCK_COL0, False)]
    records[0].cause, records[1].cause = repo_scoring.MODEL_CLOSED, repo_scoring.EXACT
    _, summary = repo_report.summarize(records)
    assert summary["completer"]["block_answers_by_cause"] == {repo_scoring.EXACT: 1, repo_scoring.MODEL_CLOSED: 1}
    assert "block_answers_by_cause" not in summary[PLAIN]
    table = repo_report.causes_markdown(summary)
    assert "| completer | 1 | 0 | 0 | 1 | 0 | 0 | 0 |" in table and PLAIN not in table
    assert repo_report.causes_markdown({PLAIN: summary[PLAIN]}) == ""


@pytest.mark.parametrize("quick, name", [(False, "quality-repo-texts.json"), (True, "quality-repo-texts-quick.json")])
def test_a_quick_run_keeps_its_texts_apart_from_a_full_runs(quick, name):
    assert repo_bench.texts_file(quick).name == name
    assert repo_bench.texts_file(quick).parent == repo_bench.TEXTS_FILE.parent
