"""Options that several `completer bench` commands share."""

from __future__ import annotations

from pathlib import Path

import click


cpu_threads_bind_option = click.option(
    "--cpu-threads-bind", help="VLLM_CPU_OMP_THREADS_BIND for the engine, e.g. 0-1 to use every core "
                               "of an otherwise idle 2-core machine (default: $VLLM_CPU_OMP_THREADS_BIND where set, else all cores but one).")


def repo_options(command):
    """--repos-dir and --tasks, shared by `bench quality --set repo` and `bench repo-tasks`."""
    command = click.option("--tasks", "tasks_file", type=click.Path(dir_okay=False, path_type=Path),
                           help="The holes' task file (default: completer/bench/data/repo-tasks.json).")(command)
    return click.option("--repos-dir", type=click.Path(file_okay=False, path_type=Path),
                        default=Path("~/.cache/completer/repos"), show_default=True,
                        help="Folder with the repositories as owner+name or owner/name: clones or bare git "
                             "directories (owner+name/repo also).")(command)
