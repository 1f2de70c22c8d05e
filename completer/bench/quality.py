"""`completer bench quality`: HumanEval-infilling with the real target, scored three ways.

Rows, all in one engine (per-request k; k = 0 is the target alone):

- plain FIM: ``<|fim_prefix|>prompt<|fim_suffix|>suffix<|fim_middle|>``, the model's raw text;
- completer: completer's context, plan and post-processing (``Completer.complete``), k = 0;
- completer, speculative: the same with k = 5 — its outputs must equal the row above;
- completer, suffix first (SPM), with --spm: completer's context in suffix-prefix-middle
  order, k = 0, which would let the prefix cache serve all but the cursor's end of the
  prompt while typing (measured in docs/benchmarks/fim-order.md: the Qwen2.5-Coder models
  do not handle it).

Exact match and edit similarity compare with the canonical solution; pass@1 runs the
task's tests on prompt + completion + suffix in a subprocess with a timeout and no network.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from rapidfuzz.distance import Levenshtein

SETS = {"single-line": "SingleLineInfilling", "multi-line": "MultiLineInfilling",
        "random-span-light": "RandomSpanInfillingLight", "single-line-mid": "SingleLineInfilling"}
# not part of a default run: single-line tasks whose cursor sits inside the line (see mid_line_task)
DERIVED_SETS = ("single-line-mid",)
DEFAULT_SETS = tuple(name for name in SETS if name not in DERIVED_SETS)
PLAIN, COMPLETER, SPECULATIVE = "plain FIM", "completer", "completer, speculative k=5"
SPM = "completer, suffix first (SPM)"
ROWS = (PLAIN, COMPLETER, SPECULATIVE, SPM)


def anchor_row(anchor: str) -> str:
    """The row's name for ``--anchor``: where the FIM prefix ends (the settings' fim_middle_anchor)."""
    return {"cursor": "completer, FIM prefix to the cursor", "auto": "completer, fim_middle_anchor auto",
            "indentation": "completer, FIM prefix to the block start only after indentation"}.get(
        anchor, f"completer, FIM prefix to the {anchor} start")


def extra_rows(spm: bool, anchors: tuple[str, ...]) -> dict[str, dict]:
    """Rows beyond the three standard ones: their names and the settings each one changes."""
    rows = {SPM: {"fim_order": "spm"}} if spm else {}
    for anchor in anchors:
        rows[anchor_row(anchor)] = {"fim_middle_anchor": anchor}
    return rows
TEST_TIMEOUT_S = 10.0
# blocks sockets in the test process (and there is no network namespace to reach anything anyway)
_NO_NETWORK = """\
import socket
def _refuse(*args, **kwargs):
    raise OSError("network access is disabled in benchmark tests")
socket.socket = _refuse
socket.create_connection = _refuse
"""


@dataclass(frozen=True)
class Task:
    id: str
    set: str
    prompt: str
    suffix: str
    solution: str
    test: str
    entry_point: str


@dataclass
class Record:
    task: str
    set: str
    row: str
    completion: str
    exact: bool
    edit_similarity: float
    passed: bool | None = None
    tokens: int = 0
    latency_s: float = 0.0


def mid_line_starts(line: str) -> list[int]:
    """Offsets in ``line`` where code has begun and a word starts after a space or an opening bracket."""
    return [j for j in range(1, len(line.rstrip()))
            if line[:j].strip() and (line[j - 1] == " " or line[j - 1] in "([{") and not line[j].isspace()]


def mid_line_task(task: Task, rng: random.Random) -> Task | None:
    """``task`` (a single-line one) with the cursor moved into its line, after a space or an
    opening bracket: where a value or an argument list begins, as when the user pauses there."""
    starts = mid_line_starts(task.solution)
    if not starts:
        return None
    j = rng.choice(starts)
    line_end = task.solution.rstrip("\n")
    # in the editor the line's break is already there, after the cursor
    return Task(f"{task.id}@{j}", "single-line-mid", task.prompt + task.solution[:j],
                task.solution[len(line_end):] + task.suffix, line_end[j:], task.test, task.entry_point)


def load(data_dir: Path, n: int, seed: int = 0, sets=DEFAULT_SETS) -> list[Task]:
    """A seeded sample of ``n`` tasks from each set."""
    tasks = []
    for name in sets:
        rows = [json.loads(line) for line in gzip.open(data_dir / f"HumanEval-{SETS[name]}.jsonl.gz", "rt")]
        rng = random.Random(f"{seed}-{name}")
        sample = [Task(r["task_id"], name, r["prompt"], r["suffix"], r["canonical_solution"], r["test"],
                       r["entry_point"]) for r in rng.sample(rows, len(rows) if name in DERIVED_SETS else min(n, len(rows)))]
        if name == "single-line-mid":
            sample = [t for t in (mid_line_task(t, rng) for t in sample) if t is not None][:n]
        tasks.extend(sample)
    return tasks


def exact_match(completion: str, solution: str) -> bool:
    """Equal up to surrounding whitespace and trailing spaces on lines."""
    return _normalise(completion) == _normalise(solution)


def edit_similarity(completion: str, solution: str) -> float:
    """1 − Levenshtein distance / longer length, on the normalised texts (1.0: identical)."""
    return Levenshtein.normalized_similarity(_normalise(completion), _normalise(solution))


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip()


def program(task: Task, completion: str) -> str:
    """The file whose tests decide pass@1."""
    return f"{task.prompt}{completion}{task.suffix}\n\n{task.test}\n\ncheck({task.entry_point})\n"


def _isolation() -> list[str]:
    """A command prefix that runs without network: a fresh network namespace when allowed."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True).returncode == 0:
        return [unshare, "-rn"]
    return []


def run_tests(source: str, timeout: float = TEST_TIMEOUT_S, prefix: list[str] | None = None) -> bool:
    """Whether ``source`` runs to the end in a fresh interpreter, in a temp dir, without network."""
    with tempfile.TemporaryDirectory(prefix="completer-quality-") as tmp:
        Path(tmp, "task.py").write_text(source)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp}  # no proxies, nothing of ours
        runner = _NO_NETWORK + "import runpy\nrunpy.run_path('task.py', run_name='__main__')\n"
        cmd = (prefix if prefix is not None else _isolation()) + [sys.executable, "-I", "-c", runner]
        try:
            done = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0


def summarize(records: list[Record]) -> list[dict]:
    """One row per (set, row): n, pass@1, exact match, edit similarity."""
    groups: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        groups.setdefault((r.set, r.row), []).append(r)
    out = []
    names = list(dict.fromkeys(r.row for r in records))  # in the order they were generated
    for name in SETS:
        for row in names:
            recs = groups.get((name, row))
            if not recs:
                continue
            scored = [r for r in recs if r.passed is not None]
            out.append({
                "set": name, "row": row, "n": len(recs),
                "pass@1": sum(r.passed for r in scored) / len(scored) if scored else None,
                "exact_match": sum(r.exact for r in recs) / len(recs),
                "edit_similarity": sum(r.edit_similarity for r in recs) / len(recs),
                "mean_latency_s": sum(r.latency_s for r in recs) / len(recs),
            })
    return out


def identical_count(records: list[Record]) -> tuple[int, int]:
    """(tasks whose speculative completion equals the target-alone one, tasks compared)."""
    alone = {(r.set, r.task): r.completion for r in records if r.row == COMPLETER}
    spec = [(r.set, r.task, r.completion) for r in records if r.row == SPECULATIVE]
    return sum(alone.get((s, t)) == c for s, t, c in spec), len(spec)


def markdown(rows: list[dict], identical: tuple[int, int], meta: dict) -> str:
    lines = ["| set | row | n | pass@1 | exact match | edit similarity | mean latency s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = "–" if r["pass@1"] is None else f"{r['pass@1']:.1%}"
        lines.append(f"| {r['set']} | {r['row']} | {r['n']} | {p} | {r['exact_match']:.1%} "
                     f"| {r['edit_similarity']:.3f} | {r['mean_latency_s']:.2f} |")
    return ("# Quality: HumanEval-infilling, plain FIM vs completer\n\n"
            f"Machine: {meta['machine']}; {meta['vllm']}; target {meta['target']} (greedy), draft "
            f"{meta['draft']}; a seeded sample of n = {meta['n']} tasks per set (seed {meta['seed']}); "
            f"max {meta['max_tokens']} tokens; wall time {meta['wall_s']} s." +
            (f" Only the {meta['scored']} of the {meta['sampled']} sampled tasks where the rows' prompts differ "
             "were run: on the others every row reads the same prompt." if meta.get("differing_only") else "") +
            "\n\n" + "\n".join(lines) +
            (f"\n\nSpeculative (k=5) and target-alone completer outputs identical on {identical[0]}/{identical[1]} "
             "tasks." if identical[1] else "") + "\n\n![pass@1](quality.png)\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [s for s in SETS if any(r["set"] == s for r in rows)]
    names = list(dict.fromkeys(r["row"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(names)
    for i, row in enumerate(names):
        values = [next((r["pass@1"] or 0.0 for r in rows if r["set"] == s and r["row"] == row), 0.0) for s in sets]
        bars = ax.bar([x + i * width for x in range(len(sets))], [v * 100 for v in values], width, label=row)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(sets))], sets)
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("HumanEval-infilling, Qwen2.5-Coder-1.5B")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


async def _generate(settings, tasks: list[Task], progress, extras: dict[str, dict],
                    speculative: bool = True, differing_only: bool = False) -> list[Record]:
    from completer.context.prompt import QWEN
    from completer.engine import start_engine
    from completer.pipeline import Completer
    from completer.types import GenerationPlan

    engine = await asyncio.to_thread(start_engine, settings)
    try:
        completer = Completer(engine, settings)
        rows = [(COMPLETER, completer, 0)] + ([(SPECULATIVE, completer, 5)] if speculative else [])
        rows += [(name, Completer(engine, settings.model_copy(update=update)), 0) for name, update in extras.items()]
        records = []
        for n, task in enumerate(tasks):
            if differing_only and not prompts_differ(task, [c for _, c, _ in rows]):
                progress(1 + len(rows))
                continue  # every row would read the same prompt: the same answer
            plan = GenerationPlan(max_tokens=settings.max_tokens, stop_token_ids=completer.stop_token_ids,
                                  speculate=False, num_speculative_tokens=0)
            gen = await engine.complete(QWEN.render(task.prompt, task.suffix), plan, cache_salt=f"plain-{n}")
            records.append(_record(task, PLAIN, gen.text, len(gen.token_ids), gen.latency_s))
            progress(1)
            for row, row_completer, k in rows:
                result = await row_completer.complete(task.prompt + task.suffix, len(task.prompt), "python", k=k,
                                                      cache_salt=f"{row}-{n}")
                gen = result.generation
                records.append(_record(task, row, result.text, len(gen.token_ids) if gen else 0,
                                       gen.latency_s if gen else 0.0))
                progress(1)
        return records
    finally:
        engine.shutdown()


def prompts_differ(task: Task, completers: list) -> bool:
    """Whether the rows' completers build different prompts for ``task``."""
    text, offset = task.prompt + task.suffix, len(task.prompt)
    return len({c.context(text, offset, "python").prompt for c in completers}) > 1


def _record(task: Task, row: str, completion: str, tokens: int, latency: float) -> Record:
    return Record(task.id, task.set, row, completion, exact_match(completion, task.solution),
                  edit_similarity(completion, task.solution), None, tokens, latency)


def score(tasks: list[Task], records: list[Record], workers: int = 2) -> None:
    """Fill in ``passed`` for every record (the tests of equal programs run once)."""
    by_id = {(t.set, t.id): t for t in tasks}
    prefix = _isolation()
    sources = {id(r): program(by_id[(r.set, r.task)], r.completion) for r in records}
    unique = sorted(set(sources.values()))
    with ThreadPoolExecutor(workers) as pool:
        results = dict(zip(unique, pool.map(lambda s: run_tests(s, prefix=prefix), unique)))
    for r in records:
        r.passed = results[sources[id(r)]]


def run(n: int, out: Path | None, data_dir: Path, seed: int = 0, quick: bool = False,
        cpu_threads_bind: str | None = None, spm: bool = False, anchors: tuple[str, ...] = (),
        speculative: bool = True, sets: tuple[str, ...] = DEFAULT_SETS,
        differing_only: bool = False) -> dict:
    from tqdm import tqdm

    from completer.bench.latency import QUICK_CONTEXT_TOKENS, machine_description, vllm_version
    from completer.config import Settings

    # --quick checks exactness: float32, where results do not depend on batch or draft shapes, and
    # short prompts (a float32 prompt reads slowly on a CPU)
    settings = Settings(speculation_policy="per_request", max_tokens=32 if quick else 128,
                        dtype="float32" if quick else "bfloat16", cpu_threads_bind=cpu_threads_bind,
                        **({"context_tokens": QUICK_CONTEXT_TOKENS} if quick else {}))
    tasks = load(data_dir, n, seed, sets)
    started = time.time()
    extras = {} if quick else extra_rows(spm, anchors)
    speculative = speculative or quick  # --quick is the exactness check
    rows = 2 + speculative + len(extras)
    with tqdm(total=len(tasks) * rows, desc="bench quality", unit="req") as bar:
        records = asyncio.run(_generate(settings, tasks, bar.update, extras, speculative, differing_only))
    if out is not None:  # the completions cost minutes each; keep them before anything else can fail
        out.mkdir(parents=True, exist_ok=True)
        (out / "quality-completions.json").write_text(json.dumps([asdict(r) for r in records], indent=1))
    score(tasks, records)
    rows = summarize(records)
    identical = identical_count(records)
    meta = {"machine": machine_description(), "vllm": vllm_version(), "target": settings.model,
            "draft": settings.speculative_config.model, "n": n, "seed": seed, "max_tokens": settings.max_tokens,
            "cpu_threads_bind": cpu_threads_bind, "sampled": len(tasks),
            "scored": len({(r.set, r.task) for r in records}), "differing_only": differing_only,
            "wall_s": round(time.time() - started, 1)}
    result = {**meta, "rows": rows, "identical": {"same": identical[0], "compared": identical[1]},
              "records": [asdict(r) for r in records]}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "quality.json").write_text(json.dumps(result, indent=1))
        (out / "quality.md").write_text(markdown(rows, identical, meta))
        plot(rows, out / "quality.png")
        (out / "quality-completions.json").unlink(missing_ok=True)  # quality.json holds them now
    return result
