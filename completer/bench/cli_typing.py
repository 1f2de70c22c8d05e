"""`completer bench typing | load`: replayed typing through the language server, one editor or several at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from pydantic import ValidationError

from completer import EXIT_BAD_INPUT
from completer.bench.cli_options import cpu_threads_bind_option


@click.command("typing")
@click.option("-n", "--sessions", "num_sessions", default=3, show_default=True,
              help="Typing sessions (one function body each, from the standard library's modules).")
@click.option("--cps", "chars_per_s", default=10.0, show_default=True, help="Typing pace, characters per second.")
@click.option("--max-wait", "max_wait_s", default=60.0, show_default=True,
              help="Most seconds the typist waits for a suggestion at a pause point (a line start, an opening bracket, where a value begins).")
@click.option("--context-tokens", default=2000, show_default=True, help="The prompt's token budget.")
@click.option("--mode", "only", multiple=True,
              help="Run only the modes named so (or, if none is, whose name contains this); repeatable.")
@click.option("--quick", is_flag=True,
              help="Twelve keystrokes of one session, prompts of at most 512 tokens: checks that it works, not speed.")
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


@click.command("load")
@click.option("--editors", "editors", multiple=True, type=click.IntRange(1, 16),
              help="Editors typing at once, one scenario each (repeatable; default 1, 2, 4, 8).")
@click.option("--chars", default=120, show_default=True,
              help="Characters each editor types (its session's first ones).")
@click.option("--cps", "chars_per_s", default=10.0, show_default=True, help="Typing pace, characters per second.")
@click.option("--max-wait", "max_wait_s", default=30.0, show_default=True,
              help="Most seconds a typist waits for a suggestion at a pause point.")
@click.option("--context-tokens", default=512, show_default=True, help="The prompt's token budget.")
@click.option("--repeats", default=1, show_default=True, type=click.IntRange(1, 8),
              help="Rounds of both configurations, the order alternating (policy, stock, stock, policy, ...); "
                   "the figures are pooled, each round's ratio reported.")
@click.option("--quick", is_flag=True,
              help="1 and 2 editors, 12 characters each, nothing written: checks that it works.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write load.json/.md/.png.")
@click.option("--settings", "settings_json", default=None,
              help="Settings as JSON over the defaults, for both servers and every editor, e.g. an EAGLE-3 head: "
                   "'{\"speculative_config\": {\"model\": \"/path/to/head\"}}'.")
@cpu_threads_bind_option
def bench_load(editors: tuple[int, ...], chars: int, chars_per_s: float, max_wait_s: float, context_tokens: int,
               repeats: int, quick: bool, out: Path, settings_json: str | None, cpu_threads_bind: str | None) -> None:
    """N editors typing at once against one vLLM server: completer's policy vs stock fixed-k speculation.

    Each editor is a language server (`completer serve --engine-url URL`) replaying its own typing
    session of `bench typing`; the two servers run one after the other. Typists faster than the
    server (e.g. --cps 1000 --max-wait 300) always wait for it: the throughput is then its capacity."""
    from completer.bench import load

    if quick:
        editors, chars = editors or (1, 2), 12
    editors = tuple(editors) or load.EDITORS
    try:
        overrides = json.loads(settings_json) if settings_json else {}
        if not isinstance(overrides, dict):
            raise ValueError("not a JSON object")
        load.server_settings(overrides, {}, cpu_threads_bind)  # a bad setting fails before any server starts
    except (ValueError, ValidationError) as err:  # JSONDecodeError is a ValueError
        click.echo(f"completer: --settings: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    command = load.command_line(editors, chars, chars_per_s, max_wait_s, context_tokens, cpu_threads_bind,
                                settings_json, repeats)
    try:
        result = load.run(editors, chars, chars_per_s, max_wait_s, context_tokens, None if quick else out,
                          cpu_threads_bind, command, overrides, repeats)
    except ValueError as err:  # more editors than sessions
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    from completer.bench.load_report import markdown

    click.echo(markdown(result))
    if result["errors"]:
        sys.exit(1)
    bad = sum(f["stale"] + f["failed"] for figures in result["configs"].values() for f in figures.values())
    if bad:
        click.echo(f"completer: {bad} stale or failed answers", err=True)
        sys.exit(1)
