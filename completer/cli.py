"""`completer serve | complete` and the command group; `server` is in cli_server, `models` in cli_models,
`bench` and `draft` in bench/cli, what they share in cli_options."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT, EXIT_ENGINE, EXIT_OK, logs
from completer.bench.cli import bench, draft
from completer.cli_models import models
from completer.cli_options import (TqdmProgress, build_settings, engine_options, remote_options, remote_settings,
                                   settings_from)
from completer.cli_server import server
from completer.config import Settings

MAX_FILE_BYTES = 4 << 20  # larger files are refused: the model would see only a window anyway


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
@click.option("--in-process", is_flag=True, help="Load an engine in this process even when a local "
              "`completer server` serves the model.")
@engine_options
@remote_options
def complete(location, as_json, language, in_process, engine_url, engine_api_key_file, **engine_opts) -> None:
    """Print the completion at PATH:LINE:COL (1-based; PATH may be - for stdin).

    Without --engine-url it completes through a local `completer server` that serves the model, when
    one is running, else with an engine loaded in this process."""
    from completer.context import languages

    path, line, col = parse_location(location)
    try:
        text = read_source(path)
        offset = offset_of(text, line, col)
    except (OSError, ValueError, UnicodeDecodeError) as err:
        click.echo(f"completer: {err}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    settings = build_settings(**engine_opts)
    settings = settings.model_copy(update=remote_settings(engine_url, engine_api_key_file))
    if not settings.engine_url and not in_process:
        from completer.engine.discovery import find_server

        found, why = find_server(settings)
        settings = settings.model_copy(update={"engine_url": found}) if found else settings
        click.echo(f"completer: using the {why}" if found else f"completer: engine in this process ({why})", err=True)
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
@remote_options
def serve(tcp: bool, host: str, port: int, stdio: bool, log_file: str | None, token_file: str | None,
          engine_url: str | None, engine_api_key_file: str | None) -> None:
    """Run the language server (stdio by default)."""
    from completer.server.app import run, server as language_server
    from completer.server.listeners import is_loopback

    token = Path(token_file).read_text().strip() if token_file else None
    if token_file and not token:
        click.echo(f"completer: {token_file} is empty", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if tcp and not is_loopback(host) and not token:
        click.echo(f"completer: --host {host} is reachable from other machines; pass --token-file", err=True)
        sys.exit(EXIT_BAD_INPUT)

    # editors such as Neovim record a server's stderr as errors: --log-file keeps all of it there
    logs.configure(click.get_current_context().find_root().params["verbose"], "serve", log_file)
    # the editor's settings merge over these: an editor that sets no engine_url keeps this one
    language_server.settings = settings_from(remote_settings(engine_url, engine_api_key_file))
    run(tcp=tcp, host=host, port=port, token=token)


# ------------------------------------------------------------------ server, models, bench, draft

main.add_command(server)
main.add_command(models)
main.add_command(bench)
main.add_command(draft)


if __name__ == "__main__":
    main()
