"""GPU checks for completer on any CUDA machine with vLLM 0.26 (results as JSON under OUT).

  python3 scripts/gpu/check.py contract              every vLLM name the CUDA classes touch exists
  python3 scripts/gpu/check.py exact [--model DIR]   greedy identity in float32, speculation vs the target alone:
        - eagle3 (per request, Model Runner V2, asynchronous scheduling) with a random head on a
          random-weight 1.5B-shaped target: k = 5 and k = 0 rows of one engine, and a stock
          target-alone engine with the same random weights;
        - draft_model with the draft equal to the target (--model DIR: real weights; V1 runner):
          k = 3 and k = 0 rows, and a stock target-alone engine;
        each on 8 of completer's own prompts, one request at a time, then all 8 at once.
  python3 scripts/gpu/check.py default               `completer complete examples/sample.py:6:5` with the
        default settings (models from completer's cache), its log kept as OUT/default-complete.log

Every check appends one JSON line to OUT/gpu-checks.jsonl; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
OUT = Path(os.environ.get("OUT", "/tmp/completer-gpu/out"))


def record(name: str, ok: bool, **details) -> bool:
    OUT.mkdir(parents=True, exist_ok=True)
    line = {"check": name, "ok": ok, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **details}
    with (OUT / "gpu-checks.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    print(json.dumps(line), flush=True)
    return ok


def check_contract() -> bool:
    from completer.engine.vllm_adapter import contract_problems, vllm_version

    problems = contract_problems(backend="cuda")
    return record("contract", not problems, vllm=vllm_version(), problems=problems)


async def _outputs(settings, extra: dict | None, items, rows: dict[str, int]) -> dict[str, dict[str, list]]:
    """{row: {"b1": [token ids per prompt], "b8": [...]}} for each fixed k in ``rows``."""
    from completer.bench.gpu_latency import fixed_plan
    from completer.bench.workloads import LONG
    from completer.engine.vllm_engine import VllmEngine

    engine = await asyncio.to_thread(VllmEngine.build, settings, extra_engine_args=extra)
    out: dict[str, dict[str, list]] = {}
    try:
        for row, k in rows.items():
            plan = fixed_plan(LONG, k)
            alone = [(await engine.complete(i.ctx.prompt, plan, cache_salt=f"{row}-{n}")).token_ids
                     for n, i in enumerate(items)]
            together = await asyncio.gather(*(engine.complete(i.ctx.prompt, plan, cache_salt=f"{row}-b-{n}")
                                              for n, i in enumerate(items)))
            out[row] = {"b1": alone, "b8": [g.token_ids for g in together]}
        out["_engine"] = {"describe": engine.describe(), "stats": engine.stats()}
    finally:
        engine.shutdown()
    return out


def _compare(name: str, reference: dict, runs: dict) -> bool:
    """Each row of ``runs`` against the reference's token ids, prompt by prompt, batch 1 and batch 8."""
    ref = reference["target alone"]
    ok = True
    for row, got in runs.items():
        if row.startswith("_"):
            continue
        for shape in ("b1", "b8"):
            same = [a == b for a, b in zip(ref[shape], got[shape])]
            first = [next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                     for a, b in zip(ref[shape], got[shape])]
            ok &= record(f"{name}: {row}, {shape}", all(same), identical=f"{sum(same)}/{len(same)}",
                         first_difference=[f for f, s in zip(first, same) if not s],
                         tokens=[len(t) for t in got[shape]], engine=runs["_engine"]["describe"],
                         stats=runs["_engine"]["stats"])
    return ok


def check_exact(model: str | None, eagle3: bool = True) -> bool:
    from completer.bench.gpu_latency import build_prompts
    from completer.bench.gpu_shapes import shape_folders
    from completer.config import Settings, SpeculativeConfig
    from completer.engine import models

    tokenizer = Path(model or os.environ.get("COMPLETER_TOKENIZER") or models.resolve(models.DEFAULT_TARGET))
    items = build_prompts(tokenizer, 16, seed=1)[:8]
    folders = shape_folders(models.cache_dir() / "shape-models", tokenizer)
    f32 = dict(dtype="float32", max_num_seqs=8, batch_k_limits={}, warm_cache_plan=False)
    ok = True

    # eagle3 on Model Runner V2: random target and head (vLLM's dummy weights depend only on shapes and seed)
    dummy = {"load_format": "dummy"}
    target = Settings(model=str(folders["1.5b"]), speculative_config=SpeculativeConfig(method="none"),
                      speculation_policy="engine", **f32)
    eagle = Settings(model=str(folders["1.5b"]), speculative_config=SpeculativeConfig(
        method="eagle3", model=str(folders["eagle3-1.5b"]), num_speculative_tokens=5), **f32)
    if eagle3:
        reference = asyncio.run(_outputs(target, dummy, items, {"target alone": 0}))
        ok &= _compare("eagle3, random weights", reference,
                       asyncio.run(_outputs(eagle, dummy, items, {"eagle3 k=5": 5, "eagle3 engine, k=0": 0})))

    # draft_model on the V1 runner, the draft equal to the target
    if model:
        target = Settings(model=model, speculative_config=SpeculativeConfig(method="none"),
                          speculation_policy="engine", **f32)
        draft = Settings(model=model, speculative_config=SpeculativeConfig(
            method="draft_model", model=model, num_speculative_tokens=3), **f32)
        reference = asyncio.run(_outputs(target, None, items, {"target alone": 0}))
        ok &= _compare("draft_model = target, real weights", reference,
                       asyncio.run(_outputs(draft, None, items, {"draft k=3": 3, "draft engine, k=0": 0})))
    return ok


def check_default() -> bool:
    """The README's own command with the default settings; the log shows the engine it started."""
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "completer", "-v", "complete", "examples/sample.py:6:5"],
                          cwd=REPO, capture_output=True, text=True, timeout=540)
    (OUT / "default-complete.log").write_text(proc.stderr + "\n--- stdout ---\n" + proc.stdout)
    return record("default settings complete on the GPU", proc.returncode == 0 and bool(proc.stdout.strip()),
                  returncode=proc.returncode, completion=proc.stdout.strip()[:400], seconds=round(time.time() - started, 1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checks", nargs="+", choices=["contract", "exact", "exact-draft", "default"])
    parser.add_argument("--model", help="exact: a local target folder with real weights (draft = target)")
    args = parser.parse_args()
    ok = True
    for check in args.checks:
        try:
            ok &= {"contract": check_contract, "default": check_default,
                   "exact": lambda: check_exact(args.model),
                   "exact-draft": lambda: check_exact(args.model, eagle3=False)}[check]()
        except Exception as err:  # one failing check must not hide the others
            ok &= record(check, False, error=f"{type(err).__name__}: {err}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
