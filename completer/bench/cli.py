"""`completer bench …` and `completer draft …`: the benchmarks' and the draft tools' commands.

The bench commands themselves are in cli_latency, cli_quality and cli_typing; their shared options in cli_options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT
from completer.bench.cli_latency import bench_batch, bench_latency, bench_overhead
from completer.bench.cli_quality import bench_quality, bench_repo_tasks
from completer.bench.cli_typing import bench_load, bench_typing
from completer.config import Settings

# ------------------------------------------------------------------ bench


@click.group()
def bench() -> None:
    """Benchmarks (results as JSON, Markdown and PNG plots)."""


bench.add_command(bench_latency)  # cli_latency: speed
bench.add_command(bench_batch)
bench.add_command(bench_overhead)
bench.add_command(bench_quality)  # cli_quality: what the completions are worth
bench.add_command(bench_repo_tasks)
bench.add_command(bench_typing)  # cli_typing: replayed typing
bench.add_command(bench_load)


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
@click.option("--enforce-eager/--no-enforce-eager", default=None,
              help="With --head: engines without torch.compile and CUDA graphs (default: the configured "
                   "enforce_eager). On a GPU they skip the start-up's compilation and graph capture; "
                   "acceptance is what it measures then, the measured speedup is eager's.")
@click.option("--json", "as_json", is_flag=True)
def draft_eval(code_dir: Path, target, drafts, num_cuts: int, ks: tuple[int, ...], head: Path | None,
               max_tokens: int, dtype: str | None, enforce_eager: bool | None, as_json: bool) -> None:
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

        extra = {k: v for k, v in (("dtype", dtype), ("enforce_eager", enforce_eager)) if v is not None}
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
