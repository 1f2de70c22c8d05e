"""`completer bench quality --set repo`: holes cut in pinned public repositories, plain FIM vs completer.

The holes (repo_tasks) are read out of the repositories' files at their pinned commits
(repo_sources); each file is checked against the sha256 recorded with its holes. Rows,
in one engine, the target alone (k = 0):

- plain FIM: QWEN's FIM prompt of the prefix and suffix cut at line boundaries, nearest
  the cursor, to the token budget completer uses; the model's raw text to its stop tokens;
- completer: ``Completer.complete`` on the document with the hole removed;
- completer, speculative k=5 (only on request): the same with the draft;
- completer's cuts on the removed text (no model): the removed text followed by the file's own
  code, through completer's streaming stop and post-processing (oracle_answer). What this row
  misses, the post-processing lost; the rest of the completer row's misses are the model's.

Scores: exact match and edit similarity (quality.exact_match / edit_similarity), an exact
match "as inserted" (leading newlines and the first line's indentation count), time to
answer, and for block holes the empty answers and the answers with fewer lines than the
removed block. The code read from the repositories and the answers stay out of the
reports; the answers are kept beside the cache (TEXTS_FILE): per hole the expected text, each
row's shown answer, and its raw text before post-processing (with the engine's finish reason).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from completer.bench.quality import COMPLETER, PLAIN, SPECULATIVE
from completer.bench.repo_report import markdown, plot, summarize
from completer.bench.repo_scoring import Case, RepoRecord, cases, score
from completer.bench.repo_sources import task_texts
from completer.bench.repo_tasks import SINGLE_LINE, load_tasks, select

# 16 holes per language, 80 in all, 160 requests: about 25 minutes on a 2-core CPU (9.3 s a request measured)
DEFAULT_COUNTS = {SINGLE_LINE: 6, "block-indent": 5, "block-col0": 5}
TEXTS_FILE = Path("~/.cache/completer/bench/quality-repo-texts.json")


def texts_file(quick: bool) -> Path:
    """Where a run keeps its answers and expected texts: a --quick run (a smoke check) keeps its own,
    so that it never replaces a full run's."""
    return TEXTS_FILE.with_name("quality-repo-texts-quick.json") if quick else TEXTS_FILE
REPO_ROOT = Path(__file__).resolve().parents[2]


def plain_prompt(completer, document: str, cursor: int) -> str:
    """The plain FIM prompt: prefix and suffix cut at line boundaries to completer's own token budget."""
    from completer.context.builder import count_by_lines, cut_lines, cut_suffix

    s, counter = completer.settings, completer.counter
    prefix = cut_lines(document[:cursor], int(s.context_tokens * s.prefix_share), counter)
    suffix = cut_suffix(document[cursor:], max(s.context_tokens - count_by_lines(prefix, counter), 0), counter)
    return completer.fim.render(prefix, suffix)


ORACLE = "completer's cuts on the removed text"


def oracle_answer(completer, case: Case, follow_chars: int = 400) -> str:
    """What completer shows when the model writes exactly the removed text and then goes on with the
    file's own following code (``follow_chars`` of it), streamed as the pipeline streams: a miss
    here is the post-processing's fault, not the model's."""
    from completer.context.builder import without_held_back
    from completer.postprocess.pipeline import block_finished, postprocess
    from completer.types import CompletionKind

    ctx = completer.context(case.document, case.cursor, case.task.language, path=case.task.path)
    text = without_held_back(ctx.held_back + case.expected + case.document[case.cursor:][:follow_chars],
                             ctx.held_back)
    if ctx.kind is CompletionKind.MULTI_LINE:
        ends = (i + 1 for i, ch in enumerate(text) if ch == "\n")
        text = text[:next((end for end in ends if block_finished(text[:end], ctx)), len(text))]
    return postprocess(text, ctx)


def workspace_inputs(items: list[Case], repos_dir: Path, settings) -> dict[int, dict]:
    """Per case (by index) the neighbours and repository name an editor would pass with the repository's
    folder open as its workspace: windows of the files the hole's file imports or sits beside, read
    from the pinned commit's files, extracted to a temporary folder (the hole's own file is the open
    document, never read). Empty when ``settings`` turn workspace snippets off."""
    import tempfile

    from completer.bench.repo_sources import worktree
    from completer.server.workspace_files import WorkspaceFiles

    if not settings.workspace_snippets or settings.snippet_share <= 0:
        return {}
    files = WorkspaceFiles(budget_s=None)  # a benchmark waits for every read: the same files on every run
    out: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="completer-workspaces-") as tmp:
        roots: dict[tuple[str, str], Path] = {}
        for n, case in enumerate(items):
            key = (case.task.repo, case.task.commit)
            if key not in roots:
                roots[key] = worktree(repos_dir, case.task.repo, case.task.commit, Path(tmp) / str(len(roots)))
            root = roots[key]
            out[n] = {"neighbours": files.neighbours([str(root)], str(root / case.task.path), case.document,
                                                     case.task.language),
                      "repo": root.name}
    return out


async def _generate(settings, items: list[Case], progress, speculative: bool,
                    rows: tuple[str, ...] = (PLAIN, COMPLETER),
                    workspace: dict[int, dict] | None = None) -> tuple[list[RepoRecord], list[dict]]:
    """Records of the engine's rows named in ``rows`` (PLAIN, COMPLETER; SPECULATIVE with
    ``speculative``) and the oracle row, and per case the texts: expected, each row's shown answer,
    and its raw text as the model wrote it (before post-processing, held-back text removed) with
    the engine's finish reason (None where completer stopped the stream: the block had ended) and
    the generated token ids."""
    from completer.engine import start_engine
    from completer.pipeline import Completer
    from completer.types import GenerationPlan

    engine = await asyncio.to_thread(start_engine, settings)
    try:
        completer = Completer(engine, settings)
        completer_rows = [(row, k) for row, k in ((COMPLETER, 0), (SPECULATIVE, 5))
                          if row in rows or (row == SPECULATIVE and speculative)]
        records, texts = [], []
        for n, case in enumerate(items):
            answers, raw = {}, {}
            if PLAIN in rows:
                plan = GenerationPlan(max_tokens=settings.max_tokens, stop_token_ids=completer.stop_token_ids,
                                      speculate=False, num_speculative_tokens=0)
                started = time.perf_counter()
                gen = await engine.complete(plain_prompt(completer, case.document, case.cursor), plan,
                                            cache_salt=f"plain-{n}")
                records.append(score(case, PLAIN, gen.text, len(gen.token_ids), time.perf_counter() - started))
                answers[PLAIN] = gen.text
                raw[PLAIN] = {"text": gen.text, "finish_reason": gen.finish_reason}
                progress(1)
            for row, k in completer_rows:
                started = time.perf_counter()
                result = await completer.complete(case.document, case.cursor, case.task.language, k=k,
                                                  path=case.task.path, cache_salt=f"{row}-{n}",
                                                  **(workspace or {}).get(n, {}))
                gen = result.generation
                records.append(score(case, row, result.text, len(gen.token_ids) if gen else 0,
                                     time.perf_counter() - started, gen.text if gen else "",
                                     gen.finish_reason if gen else None))
                answers[row] = result.text
                raw[row] = {"text": gen.text if gen else "", "finish_reason": gen.finish_reason if gen else None,
                            "kind": result.kind.value, "token_ids": list(gen.token_ids) if gen else []}
                progress(1)
            texts.append({"task": case.task.id, "kind": case.task.kind, "language": case.task.language,
                          "expected": case.expected, "answers": answers, "raw": raw,
                          "workspace_files": [p for p, _ in (workspace or {}).get(n, {}).get("neighbours", [])]})
        records += [score(case, ORACLE, oracle_answer(completer, case), 0, 0.0) for case in items]
        return records, texts
    finally:
        engine.shutdown()


def completer_commit() -> tuple[str | None, list[str]]:
    """(HEAD of completer's own checkout, its files under completer/ with uncommitted changes)."""
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return None, []
    status = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "completer"],
                            capture_output=True, text=True)
    return head.stdout.strip(), [line[3:] for line in status.stdout.splitlines()]


def prepare(tasks_file: Path, repos_dir: Path, counts: dict[str, int]) -> tuple[list[dict], list[Case]]:
    """(pinned repositories, cases) for the run. Raises ValueError (task file) or SourceError (repositories)."""
    from completer.bench.repo_sources import SourceError, missing, missing_message

    repos, tasks = load_tasks(tasks_file)
    tasks = select(tasks, counts)
    used = [r for r in repos if any(t.repo == r["repo"] for t in tasks)]
    absent = missing(repos_dir, used)
    if absent:
        raise SourceError(missing_message(repos_dir, absent))
    return used, cases(tasks, task_texts(repos_dir, tasks))


def run(tasks_file: Path, repos_dir: Path, counts: dict[str, int], out: Path | None, quick: bool = False,
        cpu_threads_bind: str | None = None, speculative: bool = False,
        rows: tuple[str, ...] = (PLAIN, COMPLETER), overrides: dict | None = None,
        texts_out: Path | None = None) -> dict:
    """Score the holes of ``tasks_file`` (the first ``counts[kind]`` per language and kind; a kind
    counted 0 is left out), in the engine's ``rows`` (PLAIN, COMPLETER) plus the oracle row.

    ``overrides``: settings over the defaults (as an editor sends them). Writes
    OUT/quality-repo.{json,md,png} when ``out`` is given, the answers to ``texts_out`` (default
    texts_file); returns the JSON's dict.
    Raises ValueError or SourceError before the engine starts when the tasks cannot be read.
    """
    from tqdm import tqdm

    from completer.bench.latency import machine_description, vllm_version
    from completer.config import Settings, parse_settings

    repos, items = prepare(tasks_file, repos_dir, counts)
    settings = Settings(speculation_policy="per_request", cpu_threads_bind=cpu_threads_bind,
                        **({"max_tokens": 48} if quick else {}))
    settings, warnings = parse_settings(overrides, settings)
    if warnings:
        raise ValueError("; ".join(warnings))
    workspace = workspace_inputs(items, repos_dir, settings)
    commit, changes = completer_commit()  # the code this run loads, whatever is committed meanwhile
    started = time.time()
    per_case = len(set(rows) & {PLAIN, COMPLETER}) + speculative
    with tqdm(total=len(items) * per_case, desc="bench quality repo", unit="req") as bar:
        records, texts = asyncio.run(_generate(settings, items, bar.update, speculative, rows, workspace))
    table, summary = summarize(records)
    meta = {"command": "completer " + " ".join(sys.argv[1:]), "machine": machine_description(),
            "vllm": vllm_version(), "target": settings.model, "completer_commit": commit,
            "completer_changes": changes, "repos": repos, "counts": counts, "tasks": len(items),
            "max_tokens": settings.max_tokens, "context_tokens": settings.context_tokens,
            "cpu_threads_bind": cpu_threads_bind, "settings": overrides or {},
            "workspace_snippets": settings.workspace_snippets, "wall_s": round(time.time() - started, 1)}
    result = {**meta, "summary": summary, "rows": table, "records": [asdict(r) for r in records]}
    kept = (texts_out or texts_file(quick)).expanduser()
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(texts, indent=1))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "quality-repo.json").write_text(json.dumps(result, indent=1))
        (out / "quality-repo.md").write_text(markdown(table, result))
        plot(table, out / "quality-repo.png")
    return result
