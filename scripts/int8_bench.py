"""bf16 against int8 in vLLM, side by side in one run: agreement, prefill, decode, speculation.

    flock /tmp/completer-engine.lock .venv/bin/python scripts/int8_bench.py \
        --model target=BF16_DIR --model target-int8=INT8_DIR ... \
        --pair bf16+bf16=TARGET,DRAFT ... --out /tmp/int8-speed.json

Each --model NAME=DIR: teacher-forced top-1 agreement with the first model of its role (the name
before '-', e.g. ``target``) on held-out code windows (the same ones the conversion checks), prefill
tok/s of a 1,024-token prompt and decode ms/token over 64 greedy tokens. Each --pair NAME=T,D: the
target with the draft (draft_model, k = 3): ms per generated token on the long prompts, and whether
the output equals the target's alone at the same precision. One core, enforce_eager, greedy, as in
FACTS.md. Writes one JSON file of records.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "0")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def heldout_windows(tokenizer_dir: str, n: int, seq_len: int) -> list[list[int]]:
    from transformers import AutoTokenizer

    from completer.engine.quantize import code_texts

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    stream: list[int] = []
    for text in code_texts()["heldout"]:
        stream.extend(tok(text, add_special_tokens=False)["input_ids"])
        if len(stream) >= n * seq_len:
            break
    return [stream[i:i + seq_len] for i in range(0, n * seq_len, seq_len)]


def build(model: str, draft: str | None = None):
    from vllm import LLM

    spec = {"method": "draft_model", "model": draft, "num_speculative_tokens": 3} if draft else None
    return LLM(model=model, dtype="bfloat16", enforce_eager=True, max_model_len=2048, max_num_seqs=1,
               enable_prefix_caching=False, speculative_config=spec, seed=0)


def top1(llm, windows):
    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=1)
    out = []
    for w in windows:
        res = llm.generate([TokensPrompt(prompt_token_ids=w)], params, use_tqdm=False)[0]
        # prompt_logprobs[i]: the distribution for token i; rank 1 is the top-1 token
        out.append([next(t for t, lp in d.items() if lp.rank == 1) for d in res.prompt_logprobs[1:]])
    return out


def common_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def timed(llm, ids, max_tokens):
    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    t = time.perf_counter()
    res = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)[0]
    return time.perf_counter() - t, list(res.outputs[0].token_ids)


def quality(n: int, precisions: list[str], out: str, seed: int = 0) -> None:
    """pass@1 of completer's row (k = 0) of `completer bench quality` on the same seeded HumanEval-
    infilling tasks, one engine per target precision, one after the other."""
    import asyncio

    from completer.bench import quality as q
    from completer.bench.workloads import default_data_dir
    from completer.config import Settings
    from quality_recheck import completer_records  # scripts/, beside this file

    tasks = q.load(default_data_dir(), n, seed)

    started = time.time()
    records = []
    from completer.engine import quantize

    for precision in precisions:  # "bf16", "int8" (the target's recipe) or "int8:METHOD" (another recipe)
        kind, _, method = precision.partition(":")
        quantize.RECIPES["target"] = quantize.Recipe(method=method) if method else quantize.DEFAULT_RECIPE
        settings = Settings(speculation_policy="per_request", quantization={"target": kind, "draft": "bf16"})
        records += asyncio.run(completer_records(settings, tasks, f"completer, target {precision}"))
    q.score(tasks, records)
    result = {"n": n, "seed": seed, "wall_s": round(time.time() - started, 1), "rows": q.summarize(records),
              "records": [q.asdict(r) for r in records]}
    Path(out).write_text(json.dumps(result, indent=1))
    for row in result["rows"]:
        print(json.dumps(row), flush=True)


def report(recipes_path: str, speed_path: str, quality_path: str | None, out: str, commands: list[str],
           notes: list[str]) -> None:
    """OUT/int8.{json,md,png} from the three runs' JSON files (without a quality run: recipes and speed)."""
    from completer.bench.latency import machine_description, vllm_version
    from completer.bench.report import write_results

    recipes = json.loads(Path(recipes_path).read_text())
    speed = json.loads(Path(speed_path).read_text())
    qual = json.loads(Path(quality_path).read_text()) if quality_path else {"rows": [], "records": []}
    models = {r["name"]: r for r in speed if r["kind"] == "model"}
    pairs = {r["name"]: r for r in speed if r["kind"] == "pair"}
    pass_at_1 = {(r["set"], r["row"].rsplit(" ", 1)[-1]): r["pass@1"] for r in qual["rows"]}
    latency = {(r["set"], r["row"].rsplit(" ", 1)[-1]): r["mean_latency_s"] for r in qual["rows"]}
    sets = list(dict.fromkeys(s for s, _ in pass_at_1))
    precs = list(dict.fromkeys(p for _, p in pass_at_1))
    summary = {f"{m}_{k}": round(v, 4) for m, r in models.items()
               for k, v in r.items() if k in ("agreement", "prefill_tok_s", "decode_ms_per_token")}
    summary |= {f"pair_{p}_ms_per_token": round(r["ms_per_token"], 2) for p, r in pairs.items()}
    summary |= {f"pass_at_1_{s}_{prec}": v for (s, prec), v in pass_at_1.items()}
    summary |= {f"mean_latency_s_{s}_{prec}": round(v, 3) for (s, prec), v in latency.items()}
    summary |= {f"recipe_{r['model']}_{r['name']}_agreement": round(r["agreement"], 4) for r in recipes}
    result = {"summary": summary, "commands": commands, "notes": notes, "machine": machine_description(), "vllm": vllm_version(),
              "recipes": recipes, "speed": speed,
              "quality": {k: v for k, v in qual.items() if k != "records"} if quality_path else None,
              "quality_records": qual["records"]}
    lines = ["# int8 (W8A8) against bf16 on the CPU", "",
             f"Machine: {result['machine']}; {result['vllm']}; one core (VLLM_CPU_OMP_THREADS_BIND=0), "
             "enforce_eager, greedy. Qwen2.5-Coder-1.5B target and 0.5B draft, dequantized from the official "
             "Q4_K_M GGUF files to bf16, then quantized to compressed-tensors W8A8 (int8 per-channel weights, "
             "int8 dynamic per-token activations) with llmcompressor 0.14.", "",
             "## Recipes: top-1 agreement with bf16 (teacher-forced, held-out code)", "",
             "Measured at conversion (llmcompressor's simulated int8) on 16 windows of 256 tokens of the project's "
             "own source files that calibration never sees.", "",
             "| model | recipe | kept in bf16 | calibration samples | agreement | conversion s |",
             "|---|---|---|---:|---:|---:|"]
    for r in recipes:
        lines.append(f"| {r['model']} | {r['method']} | {', '.join(r['ignore'])} | {r['samples']} | "
                     f"{r['agreement']:.1%} | {r['seconds']} |")
    lines += ["", "## Speed and agreement in vLLM", "",
              "Agreement: teacher-forced top-1 against the bf16 model of the same role, in vLLM, on the same "
              "held-out windows. Prefill: one 1,024-token prompt. Decode: 64 greedy tokens.", "",
              "| model | agreement | prefill tok/s | decode ms/token |", "|---|---:|---:|---:|"]
    for name, r in models.items():
        lines.append(f"| {name} | {r['agreement']:.1%} | {r['prefill_tok_s']:.0f} | {r['decode_ms_per_token']:.1f} |")
    lines += ["", "Target + draft (draft_model, k = 3), 64 greedy tokens from each of 3 held-out 128-token prompts:", "",
              "| pair (target+draft) | ms per generated token | speed-up over the bf16 target alone | tokens equal to "
              "the same target alone, per prompt (of 64) |", "|---|---:|---:|---|"]
    base = models.get("target", {}).get("decode_ms_per_token")
    for name, r in pairs.items():
        gain = f"{base / r['ms_per_token']:.2f}x" if base else "–"
        lines.append(f"| {name} | {r['ms_per_token']:.1f} | {gain} | "
                     f"{', '.join(map(str, r.get('common_prefix_tokens') or []))} |")
    if quality_path:
        lines += ["", f"## Quality gate: HumanEval-infilling pass@1 (completer's row, k = 0, n = {qual['n']} per "
                  f"set, seed {qual['seed']}, the same tasks for both; {qual['wall_s']} s)", "",
                  "pass@1 (points against bf16), then the mean seconds per completion (completer's "
                  "defaults):", "", "| set | " + " | ".join(f"target {p}" for p in precs) + " | "
                  + " | ".join(f"s, {p}" for p in precs) + " |", "|---|" + "---:|" * (2 * len(precs))]
    for s in sets:
        b = pass_at_1.get((s, "bf16"))
        cells = [f"{pass_at_1[(s, p)]:.1%}" + ("" if p == "bf16" or b is None else
                                               f" ({(pass_at_1[(s, p)] - b) * 100:+.1f})") for p in precs]
        lines.append(f"| {s} | " + " | ".join(cells) + " | "
                     + " | ".join(f"{latency[(s, p)]:.2f}" for p in precs) + " |")
    lines += ["", *[f"{n}\n" for n in notes], "Commands:", "", "```", *commands, "```"]

    def draw(path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2 if quality_path else 1, figsize=(10 if quality_path else 6, 3.6), squeeze=False)
        a1 = axes[0][0]
        names = list(models)
        bars = a1.bar(names, [models[n]["decode_ms_per_token"] for n in names])
        a1.bar_label(bars, fmt="%.1f", fontsize=7)
        pn = list(pairs)
        bars = a1.bar(pn, [pairs[n]["ms_per_token"] for n in pn], color="tab:orange")
        a1.bar_label(bars, fmt="%.1f", fontsize=7)
        a1.set_ylabel("ms per generated token")
        a1.tick_params(axis="x", rotation=30, labelsize=7)
        a1.set_title("decode, one core")
        if not quality_path:
            fig.tight_layout()
            fig.savefig(path, dpi=110)
            plt.close(fig)
            return
        a2 = axes[0][1]
        width = 0.8 / len(precs)
        for j, prec in enumerate(precs):
            vals = [(pass_at_1.get((s, prec)) or 0) * 100 for s in sets]
            bars = a2.bar([x + j * width for x in range(len(sets))], vals, width, label=f"target {prec}")
            a2.bar_label(bars, fmt="%.0f", fontsize=7)
        a2.set_xticks([x + width * (len(precs) - 1) / 2 for x in range(len(sets))], sets, fontsize=8)
        a2.set_ylabel("pass@1 (%)")
        a2.set_title("HumanEval-infilling")
        a2.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    write_results(Path(out), "int8", result, "\n".join(lines) + "\n", draw)


def main() -> None:
    if sys.argv[1:2] == ["report"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("--recipes", required=True)
        ap.add_argument("--speed", required=True)
        ap.add_argument("--quality", help="The quality run's JSON (omitted: no quality section)")
        ap.add_argument("--out", default="docs/benchmarks")
        ap.add_argument("--command", action="append", default=[])
        ap.add_argument("--note", action="append", default=[], help="A paragraph before the commands.")
        a = ap.parse_args()
        report(a.recipes, a.speed, a.quality, a.out, a.command, a.note)
        return
    if sys.argv[1:2] == ["quality"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("cmd")
        ap.add_argument("-n", type=int, default=20)
        ap.add_argument("--precision", action="append", default=[])
        ap.add_argument("--out", required=True)
        a = ap.parse_args()
        quality(a.n, a.precision or ["bf16", "int8"], a.out)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", default=[], help="NAME=DIR")
    ap.add_argument("--pair", action="append", default=[], help="NAME=TARGET_DIR,DRAFT_DIR")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--long-prompts", type=int, default=3)
    ap.add_argument("--state", help="JSON file keeping the reference predictions and the targets' outputs "
                                    "between runs (one process per model frees its memory fully)")
    ap.add_argument("--out", required=True, help="JSON file of records (appended to when it exists)")
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    pairs = {k: v.split(",") for k, v in (p.split("=", 1) for p in args.pair)}
    first = next(iter(models.values()), None) or next(iter(pairs.values()))[0]
    windows = heldout_windows(first, args.windows, args.seq_len)
    prefill_ids = [t for w in windows[:4] for t in w]  # 1,024 tokens
    long_prompts = [w[:128] for w in windows[-args.long_prompts:]]
    state_path = Path(args.state) if args.state else None
    state = json.loads(state_path.read_text()) if state_path and state_path.is_file() else {"reference": {}, "alone": {}}
    reference, alone = state["reference"], state["alone"]
    out_path = Path(args.out)
    records = json.loads(out_path.read_text()) if out_path.is_file() else []
    for name, folder in models.items():
        llm = build(folder)
        preds = top1(llm, windows)
        role = name.split("-")[0]
        reference.setdefault(role, preds)
        ref = reference[role]
        agree = sum(a == b for x, y in zip(ref, preds) for a, b in zip(x, y)) / sum(len(x) for x in ref)
        timed(llm, prefill_ids[:64], 2)  # warm-up
        prefill_s, _ = timed(llm, prefill_ids, 1)
        decode = []  # per prompt: (65 tokens - 1 token) / 64, the median of the prompts
        for p in long_prompts:
            one_s, _ = timed(llm, p, 1)
            decode.append((timed(llm, p, 65)[0] - one_s) / 64)
        alone[folder] = [timed(llm, p, 64)[1] for p in long_prompts]
        rec = {"kind": "model", "name": name, "folder": folder, "agreement": agree,
               "agreement_tokens": sum(len(x) for x in ref), "prefill_tok_s": len(prefill_ids) / prefill_s,
               "decode_ms_per_token": statistics.median(decode) * 1000}
        records.append(rec)
        print(json.dumps(rec), flush=True)
        del llm
        gc.collect()
    for name, (target, draft) in pairs.items():
        llm = build(target, draft)
        timed(llm, long_prompts[0][:32], 4)  # warm-up
        total, outs = 0.0, []
        for p in long_prompts:
            s, toks = timed(llm, p, 64)
            total += s
            outs.append(toks)
        rec = {"kind": "pair", "name": name, "target": target, "draft": draft,
               "ms_per_token": total / (64 * len(long_prompts)) * 1000,
               "identical_to_target_alone": outs == alone[target] if target in alone else None,
               # bf16 results depend on the batch shape (FACTS.md): where the output first leaves the target's
               "common_prefix_tokens": [common_prefix(a, b) for a, b in zip(outs, alone[target])]
               if target in alone else None}
        records.append(rec)
        print(json.dumps(rec), flush=True)
        del llm
        gc.collect()
    if state_path:
        state_path.write_text(json.dumps(state))
    out_path.write_text(json.dumps(records, indent=1))

if __name__ == "__main__":
    main()
