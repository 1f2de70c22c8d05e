"""What the command line's commands share: the progress bars, the engine and remote-engine options,
and the Settings those options make."""

from __future__ import annotations

import json
import sys

import click

from completer.config import Settings, parse_settings


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


def settings_from(options: dict) -> Settings:
    """Settings from options (None values left out); parse warnings go to stderr."""
    settings, warnings = parse_settings({k: v for k, v in options.items() if v is not None})
    for w in warnings:
        click.echo(f"completer: warning: {w}", err=True)
    return settings


def engine_options(f):
    """--model, --draft, --no-speculation, -k, --temperature and --settings: build_settings' arguments."""
    f = click.option("--model", help="Target model (catalogue name, folder, .gguf or repo id).")(f)
    f = click.option("--draft", "draft", help="Draft model for speculation.")(f)
    f = click.option("--no-speculation", is_flag=True, help="Run the target alone.")(f)
    f = click.option("-k", "--num-speculative-tokens", type=click.IntRange(1, 8), help="Draft tokens per step.")(f)
    f = click.option("--temperature", type=float, help="0 (default) is greedy.")(f)
    f = click.option("--settings", "settings_json", help="Settings as JSON, e.g. '{\"max_tokens\": 64}'.")(f)
    return f


def remote_options(f):
    """--engine-url and --engine-api-key-file: remote_settings' arguments."""
    f = click.option("--engine-url", help="A running `completer server` (vLLM) to complete with, e.g. "
                     "http://gpu-box:8000, instead of an engine in this process.")(f)
    f = click.option("--engine-api-key-file", type=click.Path(dir_okay=False),
                     help="The key that server needs (default: $COMPLETER_ENGINE_API_KEY).")(f)
    return f


def remote_settings(engine_url: str | None, engine_api_key_file: str | None) -> dict:
    """The settings those two options set: only the ones given."""
    return {k: v for k, v in {"engine_url": engine_url, "engine_api_key_file": engine_api_key_file}.items() if v}


def build_settings(model, draft, no_speculation, num_speculative_tokens, temperature, settings_json) -> Settings:
    """Settings from engine_options' values: --settings' JSON, then the other options over it."""
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
    return settings_from(data)
