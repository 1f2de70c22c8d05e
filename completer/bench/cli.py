"""`completer bench …` and `completer draft …`: the benchmarks' and the draft tools' commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT
from completer.config import Settings

# ------------------------------------------------------------------ bench


cpu_threads_bind_option = click.option(
    "--cpu-threads-bind", help="VLLM_CPU_OMP_THREADS_BIND for the engine, e.g. 0-1 to use every core "
                               "of an otherwise idle 2-core machine (default: all cores but one).")


def repo_options(command):
    """--repos-dir and --tasks, shared by `bench quality --set repo` and `bench repo-tasks`."""
    command = click.option("--tasks", "tasks_file", type=click.Path(dir_okay=False, path_type=Path),
                           help="The holes' task file (default: completer/bench/data/repo-tasks.json).")(command)
    return click.option("--repos-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("~/.cache/completer/repos"), show_default=True,
                        help="Folder with the repositories as owner+name or owner/name: clones or bare git "
                             "directories (owner+name/repo also).")(command)


@click.group()
def bench() -> None:
    """Benchmarks (results as JSON, Markdown and PNG plots)."""


@bench.command("latency")
@click.option("-n", "--num-tasks", type=click.IntRange(1), default=None,
              help="Tasks, half single-line, half long (default: 200; 16 with --gpu).")
@click.option("--quick", is_flag=True, help="Six short tasks (fewer with -n): checks greedy identity only, not speed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write latency.json/.md/.png.")
@click.option("--no-ngram", is_flag=True, help="Skip the ngram engine.")
@click.option("--seed", default=0, show_default=True)
@cpu_threads_bind_option
@click.option("--gpu", is_flag=True, help="On a CUDA GPU: the Qwen2.5-Coder shapes with random weights and synthetic "
                                          "acceptance; target alone, EAGLE-3, draft, ngram_gpu and the policy at "
                                          "batch 1 and 8 (OUT defaults to docs/benchmarks/gpu).")
@click.option("--shape", "shapes", multiple=True, type=click.Choice(["1.5b", "7b"]),
              help="--gpu: target shapes (default: both).")
@click.option("--engine", "engines", multiple=True, help="--gpu: only these engines (names in bench/gpu_latency.py).")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(file_okay=False, path_type=Path),
              help="--gpu: a folder with the target's tokenizer.json (default: the converted default target).")
@click.option("--engine-url", help="The HTTP path's overhead: the in-process engine against this running "
                                   "`completer server` (same models and settings), to OUT/remote-overhead.*; "
                                   "-n is then the single-line tasks (default 10).")
@click.option("--engine-api-key-file", type=click.Path(dir_okay=False),
              help="--engine-url: the key that server needs (default: $COMPLETER_ENGINE_API_KEY).")
@click.option("--start-server", is_flag=True, help="The HTTP path's overhead against a server this run starts "
                                                   "(and stops while the in-process engine runs).")
@click.option("--long-tasks", type=click.IntRange(0), default=4, show_default=True,
              help="--engine-url / --start-server: long tasks besides the single-line ones.")
def bench_latency(num_tasks: int, quick: bool, out: Path, no_ngram: bool, seed: int,
                  cpu_threads_bind: str | None, gpu: bool, shapes: tuple[str, ...], engines: tuple[str, ...],
                  tokenizer_dir: Path | None, engine_url: str | None, engine_api_key_file: str | None,
                  start_server: bool, long_tasks: int) -> None:
    """Target alone vs draft k=3/5/8 vs ngram vs completer's policy, side by side.

    Finished tasks are kept in OUT/latency-checkpoint.jsonl: the same command resumes a stopped run.
    With --gpu, finished engines are kept in OUT/gpu-latency-records.jsonl likewise. With --engine-url
    or --start-server: completer's policy in-process against the same through vLLM's server."""
    from completer.bench import latency
    from completer.bench.report import markdown

    if engine_url or start_server:
        _bench_remote_overhead(num_tasks or 10, long_tasks, out, seed, cpu_threads_bind, engine_url,
                               engine_api_key_file)
        return
    if gpu:
        _bench_latency_gpu(out, shapes, engines, tokenizer_dir, num_tasks or 16, seed)
        return
    num_tasks = num_tasks or 200
    tasks = min(num_tasks, 6) if quick else num_tasks
    result = latency.run(tasks, None if quick else out, quick, seed, include_ngram=not no_ngram,
                         cpu_threads_bind=cpu_threads_bind)
    click.echo(markdown(result["rows"], latency.BASELINE))
    differing = [r for r in result["records"] if r["identical"] is False]
    if differing:
        click.echo(f"completer: {len(differing)} outputs differ from the target alone: "
                   + ", ".join(f"{r['config']} on {r['task']}" for r in differing[:10]), err=True)
        sys.exit(1)
    click.echo(f"all {sum(r['identical'] is not None for r in result['records'])} speculative outputs are "
               "token-identical to the target alone")


def _bench_remote_overhead(n_short: int, n_long: int, out: Path, seed: int, cpu_threads_bind: str | None,
                           engine_url: str | None, engine_api_key_file: str | None) -> None:
    from completer.bench import remote_overhead

    import shlex

    command = shlex.join(["completer", *sys.argv[1:]])
    result = remote_overhead.run(n_short, n_long, out, engine_url=engine_url, api_key_file=engine_api_key_file,
                                 seed=seed, cpu_threads_bind=cpu_threads_bind, command=command)
    click.echo(remote_overhead.markdown(result))
    click.echo(json.dumps(result["summary"], indent=1))


def _bench_latency_gpu(out: Path, shapes: tuple[str, ...], engines: tuple[str, ...], tokenizer_dir: Path | None,
                       num_tasks: int, seed: int) -> None:
    from completer.bench import gpu_latency
    from completer.engine import models

    if out == Path("docs/benchmarks"):
        out = Path("docs/benchmarks/gpu")
    if tokenizer_dir is None:
        try:
            tokenizer_dir = Path(models.resolve(models.DEFAULT_TARGET))
        except models.ModelError as err:
            click.echo(f"completer: no tokenizer for the shapes: {err}; or pass --tokenizer", err=True)
            sys.exit(EXIT_BAD_INPUT)
    result = gpu_latency.run(list(shapes) or ["1.5b", "7b"], list(engines) or None, out, tokenizer_dir,
                             n=num_tasks, seed=seed)
    click.echo(gpu_latency.markdown(result))
    click.echo(json.dumps(result["summary"], indent=1))


@bench.command("batch")
@click.option("--reps", default=2, show_default=True, help="Groups per batch size (the same groups under every k).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write batch.json/.md/.png.")
@click.option("--seed", default=0, show_default=True)
@cpu_threads_bind_option
def bench_batch(reps: int, out: Path, seed: int, cpu_threads_bind: str | None) -> None:
    """Throughput of k = 0/2/5 with 1-4 long completions at once: what batch_k_limits should say."""
    from completer.bench import batch

    result = batch.run(reps, out, seed, cpu_threads_bind)
    click.echo(batch.markdown(result["rows"]))
    click.echo(f"suggested batch_k_limits: {result['suggested_batch_k_limits']}")


@bench.command("quality")
@click.option("-n", "--num-tasks", type=click.IntRange(1), default=None,
              help="Tasks sampled from each HumanEval-infilling set (default 60); with --set repo, holes of each "
                   "kind per language (default 6 single-line, 5 block-indent, 5 block-col0).")
@click.option("--quick", is_flag=True, help="Two tasks per set (one per kind and language for --set repo) and short "
                                            "completions: checks that it works.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with HumanEval-*Infilling*.jsonl.gz (default: ../shared/data/humaneval-infilling).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write quality.json/.md/.png.")
@click.option("--seed", default=0, show_default=True)
@cpu_threads_bind_option
@click.option("--spm", is_flag=True, help="Also score completer's context in suffix-prefix-middle order.")
@click.option("--anchor", "anchors", multiple=True,
              type=click.Choice(["auto", "cursor", "line", "block", "indentation"]),
              help="Also score completer with this fim_middle_anchor (repeatable).")
@click.option("--speculative/--no-speculative", default=None,
              help="Also run the k=5 row (it only checks identity; default: on, off for --set repo).")
@click.option("--set", "sets", multiple=True,
              type=click.Choice(["single-line", "multi-line", "random-span-light", "single-line-mid", "repo"]),
              help="Only these HumanEval-infilling sets (repeatable; default: the first three). single-line-mid: "
                   "single-line tasks with the cursor inside the line, after a space or an opening bracket. "
                   "repo (on its own): holes in five pinned public repositories (see --repos-dir).")
@click.option("--differing-only", is_flag=True,
              help="Run only the tasks where the rows' prompts differ (elsewhere every row gets the same answer).")
@repo_options
def bench_quality(num_tasks: int | None, quick: bool, data_dir: Path | None, out: Path, seed: int,
                  cpu_threads_bind: str | None, spm: bool, anchors: tuple[str, ...], speculative: bool | None,
                  sets: tuple[str, ...], differing_only: bool, repos_dir: Path, tasks_file: Path | None) -> None:
    """pass@1, exact match and edit similarity: plain FIM vs completer's context and post-processing.

    \b
    With --set repo: exact match, edit similarity and time to answer on holes cut in public
    repositories (Python, Go, TypeScript, Rust, Java), by language and kind, written to
    OUT/quality-repo.{json,md,png}.
    """
    from completer.bench import quality
    from completer.bench.workloads import default_data_dir

    if "repo" in sets:
        if len(sets) > 1 or spm or anchors or differing_only or data_dir:
            click.echo("completer: --set repo runs on its own (no other sets, --spm, --anchor, --differing-only "
                       "or --data)", err=True)
            sys.exit(EXIT_BAD_INPUT)
        _bench_quality_repo(num_tasks, quick, out, cpu_threads_bind, bool(speculative), repos_dir, tasks_file)
        return
    num_tasks = num_tasks or 60
    no_speculative = speculative is False
    data_dir = data_dir or default_data_dir()
    if data_dir is None:
        click.echo("completer: no HumanEval-infilling data found; pass --data", err=True)
        sys.exit(EXIT_BAD_INPUT)
    result = quality.run(2 if quick else num_tasks, None if quick else out, data_dir, seed, quick=quick,
                         cpu_threads_bind=cpu_threads_bind, spm=spm, anchors=anchors,
                         speculative=not no_speculative, sets=sets or quality.DEFAULT_SETS,
                         differing_only=differing_only)
    identical = (result["identical"]["same"], result["identical"]["compared"])
    click.echo(quality.markdown(result["rows"], identical, result))
    if identical[0] != identical[1]:
        click.echo(f"completer: {identical[1] - identical[0]} speculative completions differ from the target alone",
                   err=True)
        sys.exit(1)


def _bench_quality_repo(num_tasks: int | None, quick: bool, out: Path, cpu_threads_bind: str | None,
                        speculative: bool, repos_dir: Path, tasks_file: Path | None) -> None:
    from completer.bench import repo_bench
    from completer.bench.repo_sources import SourceError
    from completer.bench.repo_tasks import KINDS, TASKS_FILE

    counts = {kind: 1 if quick else num_tasks or repo_bench.DEFAULT_COUNTS[kind] for kind in KINDS}
    try:
        result = repo_bench.run(tasks_file or TASKS_FILE, repos_dir.expanduser(), counts, None if quick else out,
                                quick=quick, cpu_threads_bind=cpu_threads_bind, speculative=speculative)
    except (ValueError, SourceError) as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(repo_bench.markdown(result["rows"], result))
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"answers and expected texts: {repo_bench.TEXTS_FILE}")


@bench.command("repo-tasks")
@repo_options
@click.option("--seed", default=0, show_default=True)
@click.option("--single", "n_single", default=12, show_default=True, help="Single-line holes per repository.")
@click.option("--blocks", "n_block", default=10, show_default=True,
              help="Block holes per repository (each one both as block-indent and as block-col0).")
def bench_repo_tasks(repos_dir: Path, tasks_file: Path | None, seed: int, n_single: int, n_block: int) -> None:
    """Cut the holes of `bench quality --set repo` in the pinned repositories and write the task file.

    It holds positions, commits and file hashes only, never the repositories' code."""
    from completer.bench.repo_sources import REPOS, SourceError, find_git_dir, missing, missing_message, repo_files
    from completer.bench.repo_tasks import TASKS_FILE, dump_tasks, is_source_path, make_tasks

    repos_dir = repos_dir.expanduser()
    pinned = [{"repo": r.repo, "commit": r.commit, "language": r.language} for r in REPOS]
    absent = missing(repos_dir, pinned)
    if absent:
        click.echo(f"completer: {missing_message(repos_dir, absent)}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    tasks = []
    try:
        for r in REPOS:
            files = repo_files(find_git_dir(repos_dir, r.repo), r.commit, lambda p, r=r: is_source_path(p, r.language))
            tasks += make_tasks(files, r.repo, r.commit, r.language, seed, n_single, n_block)
    except SourceError as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    target = tasks_file or TASKS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dump_tasks(tasks, pinned, seed))
    click.echo(f"{len(tasks)} holes in {len(REPOS)} repositories written to {target}")


@bench.command("typing")
@click.option("-n", "--sessions", "num_sessions", default=3, show_default=True,
              help="Typing sessions (one function body each, from the standard library's modules).")
@click.option("--cps", "chars_per_s", default=10.0, show_default=True, help="Typing pace, characters per second.")
@click.option("--max-wait", "max_wait_s", default=60.0, show_default=True,
              help="Most seconds the typist waits for a suggestion at a pause point (a line start, an opening bracket, where a value begins).")
@click.option("--context-tokens", default=2000, show_default=True, help="The prompt's token budget.")
@click.option("--mode", "only", multiple=True,
              help="Run only the modes named so (or, if none is, whose name contains this); repeatable.")
@click.option("--quick", is_flag=True, help="Twelve keystrokes of one session: checks that it works, not speed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write typing.json/.md/.png.")
@click.option("--rescore", is_flag=True, help="Recompute the report of the run recorded in --out (no engine).")
@click.option("--warm-prompt", is_flag=True,
              help="Instead: each session's first suggestion with and without the warm prompt, against a cold "
                   "one-line request (typing-warm-prompt.json/.md/.png).")
@click.option("--read", "read_s", default=30.0, show_default=True,
              help="With --warm-prompt: seconds the typist reads the opened document before typing.")
def bench_typing(num_sessions: int, chars_per_s: float, max_wait_s: float, context_tokens: int,
                 only: tuple[str, ...], quick: bool, out: Path, rescore: bool, warm_prompt: bool,
                 read_s: float) -> None:
    """Replayed typing through the LSP server: no reuse vs prefix cache + type-ahead + stable cuts."""
    from completer.bench import typing_bench

    if warm_prompt:
        from completer.bench.typing_bench import warm

        click.echo(warm.markdown(warm.run(num_sessions, read_s, chars_per_s, context_tokens, None if quick else out,
                                          num_cold=1 if quick else 3,
                                          command=" ".join(["completer", *sys.argv[1:]]))))
        return
    if rescore:
        click.echo(typing_bench.markdown(typing_bench.rescore(out)))
        return
    result = typing_bench.run(num_sessions, chars_per_s, context_tokens, None if quick else out, quick=quick,
                              max_wait_s=max_wait_s, only=only)
    click.echo(typing_bench.markdown(result))
    stale = sum(m["stale"] for m in result["modes"].values())
    failed = sum(m["failed"] for m in result["modes"].values())
    if stale or failed:
        click.echo(f"completer: {stale} stale and {failed} failed answers", err=True)
        sys.exit(1)


@bench.command("load")
@click.option("--editors", "editors", multiple=True, type=click.IntRange(1, 16),
              help="Editors typing at once, one scenario each (repeatable; default 1, 2, 4, 8).")
@click.option("--chars", default=120, show_default=True,
              help="Characters each editor types (its session's first ones).")
@click.option("--cps", "chars_per_s", default=10.0, show_default=True, help="Typing pace, characters per second.")
@click.option("--max-wait", "max_wait_s", default=30.0, show_default=True,
              help="Most seconds a typist waits for a suggestion at a pause point.")
@click.option("--context-tokens", default=512, show_default=True, help="The prompt's token budget.")
@click.option("--quick", is_flag=True,
              help="1 and 2 editors, 12 characters each, nothing written: checks that it works.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write load.json/.md/.png.")
@cpu_threads_bind_option
def bench_load(editors: tuple[int, ...], chars: int, chars_per_s: float, max_wait_s: float, context_tokens: int,
               quick: bool, out: Path, cpu_threads_bind: str | None) -> None:
    """N editors typing at once against one vLLM server: completer's policy vs stock fixed-k speculation.

    Each editor is a language server (`completer serve --engine-url URL`) replaying its own typing
    session of `bench typing`; the two servers run one after the other."""
    from completer.bench import load

    if quick:
        editors, chars = editors or (1, 2), 12
    editors = tuple(editors) or load.EDITORS
    command = load.command_line(editors, chars, chars_per_s, max_wait_s, context_tokens, cpu_threads_bind)
    try:
        result = load.run(editors, chars, chars_per_s, max_wait_s, context_tokens, None if quick else out,
                          cpu_threads_bind, command)
    except ValueError as err:  # more editors than sessions
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(load.markdown(result))
    bad = sum(f["stale"] + f["failed"] for figures in result["configs"].values() for f in figures.values())
    if bad:
        click.echo(f"completer: {bad} stale or failed answers", err=True)
        sys.exit(1)


@bench.command("overhead")
@click.option("-n", "--keystrokes", default=300, show_default=True, help="Edits typed, one request after each.")
@click.option("--lines", default=5000, show_default=True, help="Length of the file typed into.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write overhead.json/.md/.png.")
def bench_overhead(keystrokes: int, lines: int, out: Path) -> None:
    """Time of context building + post-processing per request while typing (no engine)."""
    from completer.bench import overhead

    result = overhead.run(keystrokes, lines, out)
    click.echo(overhead.markdown(result))


# ------------------------------------------------------------------ draft


@click.group()
def draft() -> None:
    """Choose a draft model, or train an EAGLE-3 head on your code."""


@draft.command("eval")
@click.argument("code_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", default=None, help="Target model (default: the configured one).")
@click.option("--draft", "drafts", multiple=True, help="Candidate draft; repeat for several.")
@click.option("-n", "--num-cuts", default=20, show_default=True, help="Cursor positions sampled from CODE_DIR.")
@click.option("-k", "--num-speculative-tokens", "ks", multiple=True, type=click.IntRange(1, 8),
              help="k (default: 5; with --head: 3, 5 and 8). Repeat for several with --head.")
@click.option("--head", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An EAGLE-3 head (`completer draft train`'s OUT/head or an epoch's checkpoint): acceptance per k, "
                   "projected and measured speedup against the target alone, on files it did not train on.")
@click.option("--max-tokens", default=64, show_default=True, type=click.IntRange(1))
@click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32", "auto"]), default=None,
              help="The engine's dtype (default: the configured one).")
@click.option("--json", "as_json", is_flag=True)
def draft_eval(code_dir: Path, target, drafts, num_cuts: int, ks: tuple[int, ...], head: Path | None,
               max_tokens: int, dtype: str | None, as_json: bool) -> None:
    """Acceptance and projected speedup of each candidate draft, or of a trained EAGLE-3 head,
    on the code in CODE_DIR.

    \b
    Example:
      completer draft eval --draft qwen2.5-coder-0.5b-instruct --draft ./my-draft ~/src/project
      completer draft eval --head ~/heads/project/head ~/src/project
    """
    from completer.bench.draft_eval import HEAD_KS, evaluate, evaluate_head

    settings = Settings()
    target = target or settings.model
    if head is not None:
        from completer.draft.cli import head_markdown

        extra = {"dtype": dtype} if dtype else {}
        try:
            result = evaluate_head(target, head, code_dir, num_cuts, tuple(ks) or HEAD_KS, max_tokens, **extra)
        except ValueError as err:
            click.echo(f"completer: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        click.echo(json.dumps(result, indent=2) if as_json else head_markdown(result, target, str(head)))
        if not all(r["identical"] for r in result["rows"]):
            click.echo("completer: the head's output differs from the target alone", err=True)
            sys.exit(1)
        return
    num_speculative_tokens = ks[0] if ks else 5
    drafts = list(drafts) or [settings.speculative_config.model]
    try:
        results = evaluate(target, drafts, code_dir, num_cuts, num_speculative_tokens)
    except ValueError as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    click.echo(f"target {target}, k={num_speculative_tokens}, {results[0]['requests']} positions in {code_dir}")
    click.echo("| draft | acceptance rate | mean acceptance length | draft cost | projected speedup |")
    click.echo("|---|---:|---:|---:|---:|")
    for r in sorted(results, key=lambda r: -r["projected_speedup"]):
        rate = f"{r['acceptance_rate']:.1%}" if r["acceptance_rate"] is not None else "–"
        click.echo(f"| {r['draft']} | {rate} | {r['mean_acceptance_length']:.2f} | {r['draft_cost']:.2f} "
                   f"| {r['projected_speedup']:.2f}× |")


def _draft_train_command():
    from completer.draft.cli import draft_train

    return draft_train


draft.add_command(_draft_train_command())
