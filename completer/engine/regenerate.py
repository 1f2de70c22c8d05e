"""Completions written by the target itself (``draft train --target-completions``).

A head learns to predict the target; trained on the target's own greedy continuations of the
prompts it matches what it will be asked at serving time better than on the files' text. vLLM
generates them in a child process (``python -m completer.engine.regenerate IN OUT``), so that its
memory is all given back before the target is loaded again for its hidden states.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Row = tuple[list[int], list[int]]


def prompt_of(row: Row) -> list[int]:
    """The prompt's ids: those before the first position under the loss mask."""
    ids, mask = row
    return ids[:mask.index(1)] if 1 in mask else list(ids)


def with_completions(rows: Sequence[Row], completions: Sequence[list[int]]) -> list[Row]:
    """Rows with their completions replaced, one per row, in order; rows whose new completion is
    empty are dropped. Raises ValueError when the counts differ."""
    if len(rows) != len(completions):
        raise ValueError(f"{len(completions)} completions for {len(rows)} prompts")
    out = []
    for row, completion in zip(rows, completions):
        if completion:
            prompt = prompt_of(row)
            out.append((prompt + list(completion), [0] * len(prompt) + [1] * len(completion)))
    return out


def generate(target_dir: Path, rows: Sequence[Row], max_tokens: int, stop_ids: Sequence[int], work: Path,
             run: Callable = subprocess.run) -> list[list[int]]:
    """The target's greedy completion of each row's prompt (the stop token kept when it ended
    one), from a child process. Raises RuntimeError when that process fails."""
    work.mkdir(parents=True, exist_ok=True)
    request = {"target": str(target_dir), "prompts": [prompt_of(r) for r in rows], "max_tokens": max_tokens,
               "stop_ids": list(stop_ids)}
    (work / "regenerate-in.json").write_text(json.dumps(request))
    done = run([sys.executable, "-m", "completer.engine.regenerate", str(work / "regenerate-in.json"),
                str(work / "regenerate-out.json")])
    if done.returncode != 0:
        raise RuntimeError(f"generating the target's completions failed (exit {done.returncode})")
    return json.loads((work / "regenerate-out.json").read_text())["completions"]


def _main(source: str, target_file: str) -> None:
    request = json.loads(Path(source).read_text())
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    import torch

    cuda = torch.cuda.is_available()
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    if not cuda:
        from completer.engine.environment import default_threads_bind

        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", default_threads_bind(os.cpu_count() or 1))
    from vllm import LLM, SamplingParams

    longest = max(len(p) for p in request["prompts"]) + request["max_tokens"] + 8
    llm = LLM(request["target"], dtype="bfloat16" if cuda else "float32", max_model_len=longest,
              enforce_eager=not cuda, seed=0)
    params = SamplingParams(temperature=0, max_tokens=request["max_tokens"], stop_token_ids=request["stop_ids"])
    outputs = llm.generate([{"prompt_token_ids": p} for p in request["prompts"]], params)
    completions = []
    for o in outputs:
        ids = list(o.outputs[0].token_ids)
        if o.outputs[0].finish_reason == "stop" and o.outputs[0].stop_reason in request["stop_ids"] \
                and (not ids or ids[-1] != o.outputs[0].stop_reason):
            ids.append(o.outputs[0].stop_reason)  # the head should learn where the target stops
        completions.append(ids)
    Path(target_file).write_text(json.dumps({"completions": completions}))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
