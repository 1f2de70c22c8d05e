"""`completer draft train` and the table of `completer draft eval --head`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT


def head_markdown(result: dict, target: str, head: str) -> str:
    """The eval rows as a Markdown table, with what they were measured on."""
    lines = [f"target {target}, head {head}: {result['cuts']} positions "
             f"({result['files_left_out']} files the head trained on left out)",
             "| k | acceptance rate | mean acceptance length | projected speedup | measured speedup | identical |",
             "|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        rate = f"{r['acceptance_rate']:.1%}" if r["acceptance_rate"] is not None else "–"
        measured = f"{r['measured_speedup']:.2f}×" if r["measured_speedup"] else "–"
        lines.append(f"| {r['k']} | {rate} | {r['mean_acceptance_length']:.2f} | {r['projected_speedup']:.2f}× "
                     f"| {measured} | {_identical(r)} |")
    lines.append(f"projected = mean acceptance length / (1 + k × {result['rows'][0]['draft_cost']:.2f}), the "
                 "policy's cost of an EAGLE-3 draft token; measured = target alone's time / the head's, same cuts")
    return "\n".join(lines)


def _identical(row: dict) -> str:
    """'yes', or how many requests differ and from which token on (greedy runs that part ways)."""
    if row["identical"]:
        return "yes"
    firsts = row.get("first_differences", [])
    at = f" from token {', '.join(map(str, firsts))}" if firsts else ""
    return f"NO: {len(firsts) or '?'} of {row['requests']}{at}"


@click.command("train")
@click.argument("code_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("draft-head"),
              show_default=True, help="Run folder: data/, checkpoints/, head/ (keep it out of git).")
@click.option("--target", default=None, help="Target model (default: the configured one).")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1))
@click.option("--steps", "max_steps", type=click.IntRange(1), default=None,
              help="Stop after this many optimizer steps in all (default: the epochs' end).")
@click.option("--resume", is_flag=True, help="Go on with the run in --out: its data and last checkpoint.")
@click.option("--per-file", default=8, show_default=True, type=click.IntRange(1), help="Examples per source file.")
@click.option("--max-examples", default=4000, show_default=True, type=click.IntRange(2))
@click.option("--context-tokens", default=768, show_default=True, type=click.IntRange(64),
              help="The training prompts' token budget.")
@click.option("--held-out", default=0.1, show_default=True, type=click.FloatRange(0.0, 0.9),
              help="Share of the files kept out of training (draft eval uses them).")
@click.option("--draft-vocab-size", default=32000, show_default=True, type=click.IntRange(16),
              help="Tokens the head predicts (the most frequent in the examples); --init-head brings its own.")
@click.option("--total-seq-len", default=8192, show_default=True, type=click.IntRange(64),
              help="Tokens packed into one training step.")
@click.option("--lr", default=3e-4, show_default=True,
              help="Learning rate (the H200 runs in docs/benchmarks/gpu/real-weights: 3e-4 with --loss-on all).")
@click.option("--allow-cpu", is_flag=True, help="Train on a CPU even for a target that is not tiny (very slow).")
@click.option("--target-completions", is_flag=True,
              help="Train on the target's own greedy completions of the prompts (vLLM) instead of the files' text: "
                   "closer to what the head is asked when serving.")
@click.option("--loss-on", type=click.Choice(["all", "completion"]), default="all", show_default=True,
              help="The tokens the head learns at: every token (its loss is the target's own distribution "
                   "there, so the prompt teaches too) or only the text after the cursor.")
@click.option("--init-head", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Start from this head's weights and draft vocabulary (e.g. one trained in an earlier "
                   "session, on other code or a fresh sample of it); a run resumed with --resume ignores it.")
@click.option("--seed", default=0, show_default=True, help="Picks the examples' files and cursor positions.")
@click.argument("speculators_args", nargs=-1, type=click.UNPROCESSED)
def draft_train(code_dir: Path, out: Path, target: str | None, epochs: int, max_steps: int | None, resume: bool,
                per_file: int, max_examples: int, context_tokens: int, held_out: float, draft_vocab_size: int,
                total_seq_len: int, lr: float, allow_cpu: bool, target_completions: bool, loss_on: str,
                init_head: Path | None, seed: int, speculators_args: tuple[str, ...]) -> None:
    """Train an EAGLE-3 head for the target on the code in CODE_DIR (on a GPU).

    Examples are completer prompts at real cursor positions (fill-in-the-middle) and at line
    starts (left to right); the target's hidden states over them train one decoder layer with
    the `speculators` library. The head is OUT/head: set speculative_config.method to eagle3 and
    speculative_config.model to that folder. Further `speculators train` flags may follow `--`.

    \b
    Example:
      completer draft train ~/src/project --out ~/heads/project
      completer draft eval --head ~/heads/project/head ~/src/project
    """
    from completer.config import Settings
    from completer.draft.train import TrainError, TrainOptions, train
    from completer.engine import models

    try:
        target_dir = Path(models.resolve(target or Settings().model))
    except models.ModelError as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    opts = TrainOptions(code_dir=code_dir, out=out, target_dir=target_dir, epochs=epochs, max_steps=max_steps,
                        resume=resume, allow_cpu=allow_cpu, per_file=per_file, max_examples=max_examples,
                        context_tokens=context_tokens, held_out=held_out, draft_vocab_size=draft_vocab_size,
                        total_seq_len=total_seq_len, lr=lr, target_completions=target_completions, loss_on=loss_on,
                        init_head=init_head, seed=seed, extra_args=list(speculators_args))
    try:
        manifest = train(opts)
    except TrainError as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"head: {out / 'head'} (epoch {manifest['checkpoint']}; {manifest['examples']} examples from "
               f"{len(manifest['files_trained'])} files, {len(manifest['files_held_out'])} held out; "
               f"data {manifest['data_seconds']:.0f} s, training {manifest['train_seconds']:.0f} s)")
    stopped = manifest.get("stopped_by") or ""
    if stopped.startswith("signal"):
        click.echo(f"completer: training stopped early by {stopped.split(': ', 1)[1]}; --resume goes on", err=True)
    elif stopped:  # an error stopped the trainer: the head is the best epoch before it
        click.echo(f"completer: training stopped by an error (traceback above): {stopped.split(': ', 1)[1]}", err=True)
        sys.exit(1)
