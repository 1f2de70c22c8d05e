"""`completer server`: vLLM's OpenAI-compatible server with completer's per-request speculation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT, EXIT_ENGINE
from completer.cli_options import TqdmProgress, build_settings, engine_options


@click.command(context_settings={"ignore_unknown_options": True}, epilog="""\b
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
@engine_options
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
    settings = build_settings(**engine_opts)
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
            # SIGTERM ends this wait through SystemExit (completer.cli's main); Ctrl-C through KeyboardInterrupt
            code = proc.proc.wait()
        click.echo(f"completer: vLLM's server exited with code {code} (log: {proc.log_path})", err=True)
        sys.exit(EXIT_ENGINE)
    except KeyboardInterrupt:
        pass
    finally:
        proc.stop()
