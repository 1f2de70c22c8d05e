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
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from completer.bench.quality import COMPLETER, PLAIN, SPECULATIVE, edit_similarity, exact_match
from completer.bench.repo_sources import task_texts
from completer.bench.repo_tasks import BLOCK_KINDS, KINDS, SINGLE_LINE, RepoTask, cut, load_tasks, select

# 16 holes per language, 80 in all, 160 requests: about 25 minutes on a 2-core CPU (9.3 s a request measured)
DEFAULT_COUNTS = {SINGLE_LINE: 6, "block-indent": 5, "block-col0": 5}
TEXTS_FILE = Path("~/.cache/completer/bench/quality-repo-texts.json")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Case:
    """A task made concrete: the document with its hole, and the expected text (never written to reports)."""

    task: RepoTask
    document: str
    cursor: int
    expected: str


@dataclass
class RepoRecord:
    task: str
    repo: str
    language: str
    kind: str
    row: str
    exact: bool
    exact_as_inserted: bool
    edit_similarity: float
    empty: bool
    answer_lines: int
    expected_lines: int
    tokens: int
    latency_s: float
    cause: str = ""  # a block answer's miss, by cause (miss_cause); "" for other rows and kinds


# why a completer block answer is not the removed block (miss_cause)
EXACT, EMPTY = "exact", "empty"
MODEL_ENDED, MODEL_CLOSED = "shorter: the model ended (stop token)", "shorter: the model closed the block"
CUT_SHORT = "shorter: cut while the model went on in the block"
LONGER, OTHER_CODE = "longer: the model went on past the block", "as long: other code"
CAUSES = (EXACT, EMPTY, MODEL_ENDED, MODEL_CLOSED, CUT_SHORT, LONGER, OTHER_CODE)


def miss_cause(shown: str, raw: str, expected: str, finish_reason: str | None, line_prefix: str) -> str:
    """Why the block answer ``shown`` is not ``expected``, read from the model's ``raw`` text (after
    the held-back text, as far as it was streamed) and how it ended (``finish_reason``: "stop" for a
    stop token, None where completer stopped the stream). ``line_prefix``: the cursor's line before it.

    A shorter answer is the model's when the raw text ends with the answer (a stop token), or goes on
    with a line indented less than the answer's first line of code, or with a closing bracket (the
    model closed the block); otherwise the cuts dropped lines the model wrote in the block
    (CUT_SHORT). One of CAUSES.
    """
    from completer.postprocess.truncate import indent_of

    if exact_match(shown, expected):
        return EXACT
    if not shown.strip():
        return EMPTY
    if line_count(shown) > line_count(expected):
        return LONGER
    if line_count(shown) == line_count(expected):
        return OTHER_CODE
    body = shown.rstrip()
    rest = raw[len(body):] if raw.startswith(body) else raw[raw.find(body) + len(body):] if body in raw else None
    if rest is None:
        return CUT_SHORT
    if not rest.strip():
        return MODEL_ENDED if finish_reason == "stop" else CUT_SHORT
    base = indent_of(next(line for line in (line_prefix + shown).split("\n") if line.strip()))
    following = next((line for line in rest.split("\n")[1:] if line.strip()), None)
    if following is None:  # the rest is on the answer's own last line
        return CUT_SHORT
    if indent_of(following) < base or following.strip()[:1] in ")]}":
        return MODEL_CLOSED
    return CUT_SHORT


def line_count(text: str) -> int:
    """Lines of ``text`` once the empty lines around it are dropped (0 for blank text)."""
    body = text.strip("\n")
    return 0 if not body.strip() else body.count("\n") + 1


def exact_as_inserted(completion: str, expected: str) -> bool:
    """Equal as the editor would insert it: leading newlines and indentation count, trailing spaces do not."""
    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")

    return norm(completion) == norm(expected)


def score(case: Case, row: str, completion: str, tokens: int, latency_s: float, raw: str | None = None,
          finish_reason: str | None = None) -> RepoRecord:
    """The record of one answer; with the model's ``raw`` text, a block answer's miss_cause too."""
    t = case.task
    cause = ""
    if raw is not None and t.kind in BLOCK_KINDS:
        cause = miss_cause(completion, raw, case.expected, finish_reason,
                           case.document[:case.cursor].rpartition("\n")[2])
    return RepoRecord(t.id, t.repo, t.language, t.kind, row, exact_match(completion, case.expected),
                      exact_as_inserted(completion, case.expected), edit_similarity(completion, case.expected),
                      not completion.strip(), line_count(completion), line_count(case.expected), tokens,
                      round(latency_s, 3), cause)


def cases(tasks: list[RepoTask], texts: dict[tuple[str, str, str], str]) -> list[Case]:
    out = []
    for t in tasks:
        document, cursor, expected = cut(texts[(t.repo, t.commit, t.path)], t)
        out.append(Case(t, document, cursor, expected))
    return out


def _share(records: list[RepoRecord], attr: str) -> float | None:
    return sum(getattr(r, attr) for r in records) / len(records) if records else None


def group_row(records: list[RepoRecord]) -> dict:
    """n, exact match, exact as inserted, edit similarity, latency, and for blocks empty and shorter answers."""
    blocks = [r for r in records if r.kind in BLOCK_KINDS]
    return {"n": len(records), "exact_match": _share(records, "exact"),
            "exact_as_inserted": _share(records, "exact_as_inserted"),
            "edit_similarity": _share(records, "edit_similarity"),
            "mean_latency_s": _share(records, "latency_s"),
            "median_latency_s": statistics.median(r.latency_s for r in records) if records else None,
            "empty_answers": sum(r.empty for r in blocks) if blocks else None,
            "shorter_answers": sum(r.answer_lines < r.expected_lines for r in blocks) if blocks else None}


def summarize(records: list[RepoRecord]) -> tuple[list[dict], dict]:
    """(table rows by language × kind × row, then by kind over all languages; summary per row)."""
    rows_names = list(dict.fromkeys(r.row for r in records))
    languages = list(dict.fromkeys(r.language for r in records))
    table = []
    for language in languages + ["all"]:
        for kind in KINDS:
            for row in rows_names:
                recs = [r for r in records if r.row == row and r.kind == kind and language in ("all", r.language)]
                if recs:
                    table.append({"language": language, "kind": kind, "row": row, **group_row(recs)})
    summary = {}
    for row in rows_names:
        recs = [r for r in records if r.row == row]
        single = group_row([r for r in recs if r.kind == SINGLE_LINE])
        block = group_row([r for r in recs if r.kind in BLOCK_KINDS])
        whole = group_row(recs)
        summary[row] = {
            "single_line_tasks": single["n"], "single_line_exact_match": single["exact_match"],
            "single_line_edit_similarity": single["edit_similarity"],
            "block_tasks": block["n"], "block_exact_match": block["exact_match"],
            "block_exact_as_inserted": block["exact_as_inserted"], "block_edit_similarity": block["edit_similarity"],
            "empty_block_answers": block["empty_answers"], "short_block_answers": block["shorter_answers"],
            **{f"{kind.replace('-', '_')}_exact_match": group_row([r for r in recs if r.kind == kind])["exact_match"]
               for kind in BLOCK_KINDS},
            "mean_latency_s": whole["mean_latency_s"], "median_latency_s": whole["median_latency_s"],
        }
        causes = cause_counts(recs)
        if causes:
            summary[row]["block_answers_by_cause"] = causes
    return table, summary


def cause_counts(records: list[RepoRecord]) -> dict[str, int]:
    """Block answers by miss_cause, in CAUSES order (only causes that occur; {} when none was classified)."""
    found = [r.cause for r in records if r.cause]
    return {cause: found.count(cause) for cause in CAUSES if cause in found}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def causes_markdown(summary: dict) -> str:
    """The block answers of each row that has causes, counted by cause (a Markdown table), or ""."""
    rows = {row: s["block_answers_by_cause"] for row, s in summary.items() if s.get("block_answers_by_cause")}
    if not rows:
        return ""
    lines = ["| row | " + " | ".join(CAUSES) + " |", "|---|" + "---:|" * len(CAUSES)]
    lines += [f"| {row} | " + " | ".join(str(causes.get(c, 0)) for c in CAUSES) + " |" for row, causes in rows.items()]
    return ("Block answers by cause, read from the model's raw text beside the shown answer: *the model ended* "
            "(a stop token right after the answer) and *the model closed the block* (its next line is indented "
            "less, or closes a bracket) are the model's own short answers; *cut while the model went on in the "
            "block* are lines the streaming stop or the cuts dropped.\n\n" + "\n".join(lines) + "\n\n")


def markdown(table: list[dict], meta: dict) -> str:
    lines = ["| language | kind | row | n | exact match | exact as inserted | edit similarity | mean s | median s "
             "| empty | shorter |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in table:
        blank = lambda v: "–" if v is None else str(v)  # noqa: E731
        lines.append(f"| {r['language']} | {r['kind']} | {r['row']} | {r['n']} | {_pct(r['exact_match'])} "
                     f"| {_pct(r['exact_as_inserted'])} | {r['edit_similarity']:.3f} | {r['mean_latency_s']:.2f} "
                     f"| {r['median_latency_s']:.2f} | {blank(r['empty_answers'])} | {blank(r['shorter_answers'])} |")
    repos = ", ".join(f"{r['repo']}@{r['commit'][:10]} ({r['language']})" for r in meta["repos"])
    commit = meta.get("completer_commit") or "unknown"
    if meta.get("completer_changes"):
        commit += " plus uncommitted changes to " + ", ".join(meta["completer_changes"])
    return ("# Quality on real repositories: plain FIM vs completer\n\n"
            f"Command: `{meta['command']}`; completer at {commit}.\n\n"
            f"Machine: {meta['machine']}; {meta['vllm']}; target {meta['target']} (greedy, target alone); "
            f"{meta['tasks']} holes ({', '.join(f'{v} {k}' for k, v in meta['counts'].items())} per language) from "
            f"{repos}; context budget {meta['context_tokens']} tokens for both rows; max {meta['max_tokens']} tokens; "
            f"wall time {meta['wall_s']} s.\n\n"
            "Exact match ignores the whitespace around the answer; *exact as inserted* counts leading newlines and the "
            "first line's indentation. *Empty*: block holes answered with nothing; *shorter*: block answers with fewer "
            "lines than the removed block. Latency is the time to the whole answer.\n\n"
            + "\n".join(lines) + "\n\n" + causes_markdown(meta.get("summary", {}))
            + "![exact match by kind](quality-repo.png)\n")


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table if r["language"] == "all"]
    names = list(dict.fromkeys(r["row"] for r in rows))
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    width = 0.8 / max(len(names), 1)
    for ax, key, label in ((axes[0], "exact_match", "exact match (%)"), (axes[1], "edit_similarity", "edit similarity")):
        scale = 100 if key == "exact_match" else 1
        for i, name in enumerate(names):
            values = [next((r[key] for r in rows if r["kind"] == k and r["row"] == name), 0.0) * scale for k in kinds]
            bars = ax.bar([x + i * width for x in range(len(kinds))], values, width, label=name)
            ax.bar_label(bars, fmt="%.0f" if scale == 100 else "%.2f", fontsize=7)
        ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(kinds))], kinds)
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("Holes in five public repositories, Qwen2.5-Coder-1.5B")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


async def _generate(settings, items: list[Case], progress, speculative: bool,
                    rows: tuple[str, ...] = (PLAIN, COMPLETER)) -> tuple[list[RepoRecord], list[dict]]:
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
                                                  path=case.task.path, cache_salt=f"{row}-{n}")
                gen = result.generation
                records.append(score(case, row, result.text, len(gen.token_ids) if gen else 0,
                                     time.perf_counter() - started, gen.text if gen else "",
                                     gen.finish_reason if gen else None))
                answers[row] = result.text
                raw[row] = {"text": gen.text if gen else "", "finish_reason": gen.finish_reason if gen else None,
                            "kind": result.kind.value, "token_ids": list(gen.token_ids) if gen else []}
                progress(1)
            texts.append({"task": case.task.id, "kind": case.task.kind, "language": case.task.language,
                          "expected": case.expected, "answers": answers, "raw": raw})
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
        rows: tuple[str, ...] = (PLAIN, COMPLETER)) -> dict:
    """Score the holes of ``tasks_file`` (the first ``counts[kind]`` per language and kind; a kind
    counted 0 is left out), in the engine's ``rows`` (PLAIN, COMPLETER) plus the oracle row.

    Writes OUT/quality-repo.{json,md,png} when ``out`` is given; returns the JSON's dict.
    Raises ValueError or SourceError before the engine starts when the tasks cannot be read.
    """
    from tqdm import tqdm

    from completer.bench.latency import machine_description, vllm_version
    from completer.config import Settings

    repos, items = prepare(tasks_file, repos_dir, counts)
    settings = Settings(speculation_policy="per_request", cpu_threads_bind=cpu_threads_bind,
                        **({"max_tokens": 48} if quick else {}))
    commit, changes = completer_commit()  # the code this run loads, whatever is committed meanwhile
    started = time.time()
    per_case = len(set(rows) & {PLAIN, COMPLETER}) + speculative
    with tqdm(total=len(items) * per_case, desc="bench quality repo", unit="req") as bar:
        records, texts = asyncio.run(_generate(settings, items, bar.update, speculative, rows))
    table, summary = summarize(records)
    meta = {"command": "completer " + " ".join(sys.argv[1:]), "machine": machine_description(),
            "vllm": vllm_version(), "target": settings.model, "completer_commit": commit,
            "completer_changes": changes, "repos": repos, "counts": counts, "tasks": len(items),
            "max_tokens": settings.max_tokens, "context_tokens": settings.context_tokens,
            "cpu_threads_bind": cpu_threads_bind, "wall_s": round(time.time() - started, 1)}
    result = {**meta, "summary": summary, "rows": table, "records": [asdict(r) for r in records]}
    kept = TEXTS_FILE.expanduser()
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(texts, indent=1))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "quality-repo.json").write_text(json.dumps(result, indent=1))
        (out / "quality-repo.md").write_text(markdown(table, result))
        plot(table, out / "quality-repo.png")
    return result
