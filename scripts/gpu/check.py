"""GPU checks for completer on any CUDA machine with vLLM 0.26 (results as JSON under OUT).

  python3 scripts/gpu/check.py contract              every vLLM name the CUDA classes touch exists
  python3 scripts/gpu/check.py exact [--model DIR]   greedy identity in float32, speculation vs the target alone
        (exact-eagle3, exact-draft, exact-ngram (ngram_gpu and ngram), exact-ngram-host (ngram); exact-v1: the three V1-runner
        methods against one reference engine):
        - eagle3 (per request, Model Runner V2, asynchronous scheduling) with a random head on a
          random-weight 1.5B-shaped target: k = 5 and k = 0 rows of one engine, and a stock
          target-alone engine with the same random weights;
        - draft_model with the draft equal to the target, ngram_gpu and ngram (V1 runner, against the
          target alone on V1 too): random 1.5B-shaped weights, or the real ones with --model DIR;
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


def check_exact(model: str | None, methods: tuple[str, ...] = ("eagle3", "draft_model", "ngram_gpu", "ngram")) -> bool:
    """Greedy identity for each of ``methods`` against the target alone, in float32.

    eagle3 runs on Model Runner V2; draft_model and ngram_gpu run on the V1 runner, so their
    reference is the target alone on V1 as well (like-for-like kernels: V1 and V2 need not agree in
    the last bit at batch 8)."""
    from completer.bench.gpu_latency import build_prompts
    from completer.bench.gpu_shapes import shape_folders
    from completer.config import Settings, SpeculativeConfig
    from completer.engine import models

    tokenizer = Path(model or os.environ.get("COMPLETER_TOKENIZER") or models.resolve(models.DEFAULT_TARGET))
    items = build_prompts(tokenizer, 16, seed=1)[:8]
    folders = shape_folders(models.cache_dir() / "shape-models", tokenizer)
    f32 = dict(dtype="float32", max_num_seqs=8, batch_k_limits={}, warm_cache_plan=False)
    # random weights unless a real model is given (vLLM's dummy weights depend only on shapes and seed,
    # so a draft of the target's shape is the target)
    target_dir, extra, weights = (model, None, "real weights") if model else (str(folders["1.5b"]),
                                                                              {"load_format": "dummy"}, "random weights")
    target = Settings(model=target_dir, speculative_config=SpeculativeConfig(method="none"),
                      speculation_policy="engine", **f32)
    engines = {
        "eagle3": (f"eagle3, {weights}", str(folders["1.5b"]), {"load_format": "dummy"},
                   SpeculativeConfig(method="eagle3", model=str(folders["eagle3-1.5b"]), num_speculative_tokens=5),
                   {"eagle3 k=5": 5, "eagle3 engine, k=0": 0}),
        "draft_model": (f"draft_model = target, {weights}", target_dir, extra,
                        SpeculativeConfig(method="draft_model", model=target_dir, num_speculative_tokens=3),
                        {"draft k=3": 3, "draft engine, k=0": 0}),
        "ngram_gpu": (f"ngram_gpu, {weights}", target_dir, extra,
                      SpeculativeConfig(method="ngram_gpu", num_speculative_tokens=5),
                      {"ngram_gpu k=5": 5, "ngram_gpu engine, k=0": 0}),
        "ngram": (f"ngram (prompt lookup on the host), {weights}", target_dir, extra,
                  SpeculativeConfig(method="ngram", num_speculative_tokens=5),
                  {"ngram k=5": 5, "ngram engine, k=0": 0}),
    }
    ok = True
    references: dict[tuple, dict] = {}
    for method in methods:
        name, folder, engine_extra, speculative, rows = engines[method]
        v1 = method != "eagle3"
        key = (folder, v1)
        with _runner(v1):
            if key not in references:
                reference_settings = target if folder == target_dir else Settings(
                    model=folder, speculative_config=SpeculativeConfig(method="none"), speculation_policy="engine", **f32)
                references[key] = asyncio.run(_outputs(reference_settings, engine_extra, items, {"target alone": 0}))
            runs = asyncio.run(_outputs(Settings(model=folder, speculative_config=speculative, **f32),
                                        engine_extra, items, rows))
        ok &= _compare(name, references[key], runs)
    return ok


class _runner:
    """VLLM_USE_V2_MODEL_RUNNER=0 while the block runs (``v1``), else vLLM's own choice."""

    def __init__(self, v1: bool):
        self.v1 = v1

    def __enter__(self):
        from vllm import envs

        envs.disable_envs_cache()  # an engine started in this process may have frozen the variables
        self.saved = os.environ.get("VLLM_USE_V2_MODEL_RUNNER")
        if self.v1:
            os.environ["VLLM_USE_V2_MODEL_RUNNER"] = "0"

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("VLLM_USE_V2_MODEL_RUNNER", None)
        else:
            os.environ["VLLM_USE_V2_MODEL_RUNNER"] = self.saved


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
    parser.add_argument("checks", nargs="+", choices=["contract", "exact", "exact-eagle3", "exact-draft", "exact-ngram", "exact-ngram-host", "exact-v1",
                                                         "default"])
    parser.add_argument("--model", help="exact: a local target folder with real weights (draft = target)")
    args = parser.parse_args()
    ok = True
    for check in args.checks:
        try:
            ok &= {"contract": check_contract, "default": check_default,
                   "exact": lambda: check_exact(args.model),
                   "exact-eagle3": lambda: check_exact(args.model, ("eagle3",)),
                   "exact-draft": lambda: check_exact(args.model, ("draft_model",)),
                   "exact-ngram": lambda: check_exact(args.model, ("ngram_gpu", "ngram")),
                   "exact-ngram-host": lambda: check_exact(args.model, ("ngram",)),
                   "exact-v1": lambda: check_exact(args.model, ("draft_model", "ngram_gpu", "ngram"))}[check]()
        except Exception as err:  # one failing check must not hide the others
            ok &= record(check, False, error=f"{type(err).__name__}: {err}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
