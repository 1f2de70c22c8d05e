"""`completer bench quality | repo-tasks`: completions scored against HumanEval-infilling and public repositories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT
from completer.bench.cli_options import cpu_threads_bind_option, repo_options


@click.command("quality")
@click.option("-n", "--num-tasks", type=click.IntRange(1), default=None,
              help="Tasks sampled from each HumanEval-infilling set (default 60); with --set repo, holes of each "
                   "kind per language (default 6 single-line, 5 block-indent, 5 block-col0).")
@click.option("--quick", is_flag=True, help="Two tasks per set (one with -n 1; one per kind and language for --set "
                                            "repo) and short completions: checks that it works.")
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
@click.option("--kind", "repo_kinds", multiple=True, type=click.Choice(["single-line", "block-indent", "block-col0"]),
              help="With --set repo: only holes of this kind (repeatable; default: all). A run of some kinds or "
                   "of one row prints its report and writes none to --out.")
@click.option("--completer-only", is_flag=True, help="With --set repo: skip the plain FIM row.")
@click.option("--settings", "settings_json", default=None,
              help="With --set repo: completer's settings as JSON, over the defaults, e.g. "
                   "'{\"workspace_snippets\": false}'.")
@click.option("--texts", "texts_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --set repo: where to write the answers and expected texts "
                   "(default: ~/.cache/completer/bench/quality-repo-texts.json).")
@click.option("--differing-only", is_flag=True,
              help="Run only the tasks where the rows' prompts differ (elsewhere every row gets the same answer).")
@repo_options
def bench_quality(num_tasks: int | None, quick: bool, data_dir: Path | None, out: Path, seed: int,
                  cpu_threads_bind: str | None, spm: bool, anchors: tuple[str, ...], speculative: bool | None,
                  sets: tuple[str, ...], repo_kinds: tuple[str, ...], completer_only: bool, settings_json: str | None,
                  texts_out: Path | None, differing_only: bool, repos_dir: Path, tasks_file: Path | None) -> None:
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
        try:
            overrides = json.loads(settings_json) if settings_json else None
        except json.JSONDecodeError as err:
            click.echo(f"completer: --settings is not JSON: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        _bench_quality_repo(num_tasks, quick, out, cpu_threads_bind, bool(speculative), repos_dir, tasks_file,
                            repo_kinds, completer_only, overrides, texts_out)
        return
    if repo_kinds or completer_only or settings_json or texts_out:
        click.echo("completer: --kind, --completer-only, --settings and --texts go with --set repo", err=True)
        sys.exit(EXIT_BAD_INPUT)
    num_tasks = min(num_tasks or 2, 2) if quick else num_tasks or 60
    no_speculative = speculative is False
    data_dir = data_dir or default_data_dir()
    if data_dir is None:
        click.echo("completer: no HumanEval-infilling data found; pass --data", err=True)
        sys.exit(EXIT_BAD_INPUT)
    result = quality.run(num_tasks, None if quick else out, data_dir, seed, quick=quick,
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
                        speculative: bool, repos_dir: Path, tasks_file: Path | None, kinds: tuple[str, ...] = (),
                        completer_only: bool = False, overrides: dict | None = None,
                        texts_out: Path | None = None) -> None:
    from completer.bench import repo_bench
    from completer.bench.quality import COMPLETER, PLAIN
    from completer.bench.repo_sources import SourceError
    from completer.bench.repo_tasks import KINDS, TASKS_FILE

    counts = {kind: 1 if quick else num_tasks or repo_bench.DEFAULT_COUNTS[kind] for kind in KINDS
              if not kinds or kind in kinds}
    rows = (COMPLETER,) if completer_only else (PLAIN, COMPLETER)
    whole = not (quick or kinds or completer_only or overrides)  # only a whole run replaces the report in --out
    try:
        result = repo_bench.run(tasks_file or TASKS_FILE, repos_dir.expanduser(), counts, out if whole else None,
                                quick=quick, cpu_threads_bind=cpu_threads_bind, speculative=speculative, rows=rows,
                                overrides=overrides, texts_out=texts_out)
    except (ValueError, SourceError) as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(repo_bench.markdown(result["rows"], result))
    click.echo(json.dumps(result["summary"], indent=1))
    click.echo(f"answers and expected texts: {texts_out or repo_bench.texts_file(quick)}")


@click.command("repo-tasks")
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
