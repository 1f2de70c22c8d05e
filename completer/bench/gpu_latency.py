"""`completer bench latency --gpu`: the speculative-decoding table on a CUDA GPU.

Models are the real Qwen2.5-Coder shapes (gpu_shapes.py) with random weights, so every kernel runs
at its real size; acceptance is synthetic (vLLM's ``rejection_sample_method="synthetic"``), set to
what real drafts reach: the timings say what each configuration costs and gains at that
acceptance, not what a head would reach on someone's code. Prompts are completer's own prompts for
the latency benchmark's tasks. Lengths are fixed (min_tokens = max_tokens, no stop): short
completions 24 tokens, long ones 128.

Each engine starts once per target shape; its rows run interleaved, request by request (batch 1),
then batch by batch (up to BATCH requests of one class at once, the same ones for every row; a
record's ``batch`` is how many ran together).
Finished engines are appended to OUT/gpu-latency-records.jsonl, so a rerun (or a call for another
shape) skips them and the report covers every engine recorded.

With real models (``RealModels``: a target folder, optionally a trained EAGLE-3 head and a draft),
the same rows run on real weights with real acceptance; their shape is recorded as ``real``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from completer.bench.gpu_shapes import shape_folders
from completer.bench.latency import task_context
from completer.bench.report import percentile
from completer.bench.workloads import LONG, SHORT, load_tasks
from completer.config import Settings, SpeculativeConfig
from completer.context.tokens import HFTokenCounter
from completer.engine.models import cache_dir
from completer.policy.speculation import SpeculationPolicy
from completer.types import GenerationPlan

BASELINE = "target alone"
POLICY = "completer policy"
LENGTHS = {SHORT: 24, LONG: 128}
K = 5
BATCH = 8  # requests of one class at once (fewer if the tasks hold fewer of that class)
# acceptance: EAGLE-3 at the mean acceptance lengths the issue sets (3.0 and 4.0 at k = 5); the
# 0.5B draft at the real pair's per-position rate on long completions (docs/benchmarks/latency.md:
# acceptance length 3.33 at k = 3 and 4.47 at k = 5, both what a rate of 0.88 per position gives)
EAGLE3_LENGTH = 4.0
DRAFT_RATE = 0.88


REAL = "real"  # the shape of a run on real weights


@dataclass(frozen=True)
class RealModels:
    """Real weights for the table: the target's folder, and optionally an EAGLE-3 head and a draft model."""

    target: Path
    head: Path | None = None
    draft: Path | None = None

    def folders(self) -> dict[str, Path]:
        """The folders ``settings_for`` reads, keyed as the shapes' are."""
        folders = {REAL: self.target}
        if self.head is not None:
            folders[f"eagle3-{REAL}"] = self.head
        if self.draft is not None:
            folders["0.5b"] = self.draft
        return folders


def runnable(spec: "EngineSpec", folders: dict, shape: str) -> bool:
    """Whether ``spec``'s drafter has a model here (EAGLE-3 needs a head, draft_model a draft)."""
    needs = {"eagle3": f"eagle3-{shape}", "draft_model": "0.5b"}.get(spec.method)
    return needs is None or needs in folders


def synthetic_length(length: float) -> dict:
    return {"rejection_sample_method": "synthetic", "synthetic_acceptance_length": length}


def synthetic_rates(rate: float, k: int) -> dict:
    """Each position accepted with ``rate`` given the ones before: unconditional rate**(i+1)."""
    return {"rejection_sample_method": "synthetic", "synthetic_acceptance_rates": [rate ** (i + 1) for i in range(k)]}


@dataclass(frozen=True)
class EngineSpec:
    """One engine of the benchmark: its settings' speculation, vLLM overrides and rows ({row: k})."""

    name: str
    method: str  # speculative_config.method
    per_request: bool
    rows: dict  # row name -> fixed k (0: bypass), or POLICY
    speculative_overrides: dict
    additional_config: dict | None = None


def engine_specs(eagle3_length: float = EAGLE3_LENGTH) -> list[EngineSpec]:
    return [
        EngineSpec("target", "none", False, {BASELINE: 0}, {}),
        EngineSpec("eagle3-stock", "eagle3", False, {"eagle3 k=5 (stock vLLM)": K}, synthetic_length(eagle3_length)),
        EngineSpec("eagle3", "eagle3", True, {"eagle3 k=5": K, POLICY: POLICY, "eagle3 engine, bypass": 0},
                   synthetic_length(eagle3_length)),
        EngineSpec("eagle3-piecewise-bypass", "eagle3", True, {"eagle3 engine, bypass (piecewise graphs)": 0},
                   synthetic_length(eagle3_length), {"completer_bypass_graphs": False}),
        EngineSpec("eagle3-full-bypass", "eagle3", True, {"eagle3 engine, bypass (full graphs for query length 1)": 0},
                   synthetic_length(eagle3_length), {"completer_bypass_graphs": True}),
        EngineSpec("eagle3-no-fallbacks", "eagle3", True,
                   {"eagle3 engine, bypass (no piecewise fallbacks)": 0, "eagle3 k=5 (no piecewise fallbacks)": K,
                    f"{POLICY} (no piecewise fallbacks)": POLICY},
                   synthetic_length(eagle3_length), {"completer_piecewise_fallbacks": False}),
        EngineSpec("eagle3-propose-always", "eagle3", True, {"eagle3 engine, bypass (head runs anyway)": 0},
                   synthetic_length(eagle3_length), {"completer_skip_speculator": False}),
        EngineSpec("draft", "draft_model", True, {"draft k=3": 3, "draft k=5": K}, synthetic_rates(DRAFT_RATE, K)),
        EngineSpec("ngram_gpu", "ngram_gpu", False, {"ngram_gpu k=5": K}, {}),
    ]


@dataclass
class GpuRecord:
    shape: str
    engine: str
    config: str
    length_class: str
    batch: int
    task: str
    latency_s: float
    tokens: int
    draft_tokens: int
    accepted_tokens: int
    verify_steps: int


def settings_for(spec: EngineSpec, folders: dict, shape: str) -> Settings:
    model = {"draft_model": folders.get("0.5b"), "eagle3": folders.get(f"eagle3-{shape}")}.get(spec.method)
    speculative = SpeculativeConfig(method=spec.method, num_speculative_tokens=K,
                                    **({"model": str(model)} if model else {}))
    return Settings(model=str(folders[shape]), speculative_config=speculative, max_num_seqs=8,
                    speculation_policy="per_request" if spec.per_request else "engine", batch_k_limits={},
                    warm_cache_plan=False)


def fixed_plan(length_class: str, k: int) -> GenerationPlan:
    n = LENGTHS[length_class]
    return GenerationPlan(max_tokens=n, min_tokens=n, speculate=k > 0, num_speculative_tokens=k)


async def _run_engine(spec: EngineSpec, shape: str, folders: dict, prompts: list[Item], batches: dict,
                      progress) -> list[GpuRecord]:
    from completer.engine.vllm_engine import VllmEngine

    settings = settings_for(spec, folders, shape)
    real = shape == REAL  # real weights and real acceptance: no dummy load, no synthetic rejection sampling
    extra = {} if real else {"load_format": "dummy"}
    if spec.speculative_overrides and not real:
        extra["speculative_config"] = spec.speculative_overrides
    if spec.additional_config:
        extra["additional_config"] = spec.additional_config
    engine = await asyncio.to_thread(VllmEngine.build, settings, extra_engine_args=extra)
    policy = SpeculationPolicy(settings, engine.capabilities, block_size=engine.block_size, count_tokens=len)
    records: list[GpuRecord] = []

    def plan_for(row: str, item: Item) -> GenerationPlan:
        k = spec.rows[row]
        if k == POLICY:  # the policy's choice of k; the lengths stay fixed for every row
            k = policy.plan(item.ctx, lambda speculate: "").num_speculative_tokens
        return fixed_plan(item.length_class, k)

    async def one(row: str, item: Item, batch: int, salt: str) -> GpuRecord:
        plan = plan_for(row, item)
        gen = await engine.complete(item.ctx.prompt, plan, cache_salt=salt)
        # the policy learns from every answer, as it does in the server (pipeline.py): with real
        # weights its k then follows the head's real acceptance and the measured step costs
        policy.remember(item.ctx, plan, gen, engine.prefix_cache(plan.speculate, salt))
        policy.observe_acceptance(item.ctx.language, plan, gen)
        return GpuRecord(shape, spec.name, row, item.length_class, batch, item.task, gen.latency_s,
                         len(gen.token_ids), gen.num_draft_tokens, gen.num_accepted_tokens, gen.num_verify_steps)

    try:
        for warm in prompts[:2]:  # the first requests' one-off costs stay out of the timings
            await engine.complete(warm.ctx.prompt, fixed_plan(warm.length_class, 0), cache_salt="warm-up")
        rows = list(spec.rows)
        # and the first batched step of each row's plan: on the V1 runner it ran 10-20x slower than
        # the next ones (draft k=3 and ngram_gpu, short answers, batch 8, in the first such run)
        group = next(iter(batches.values()))[0]
        for row in rows:
            await asyncio.gather(*(engine.complete(item.ctx.prompt, plan_for(row, item), cache_salt=f"warm-up-b-{i}")
                                   for i, item in enumerate(group)))
        for n, item in enumerate(prompts):
            for row in rows[n % len(rows):] + rows[: n % len(rows)]:
                records.append(await one(row, item, 1, f"{row}-{n}"))  # own salt: every prefill is cold
                progress(1)
        for length_class, groups in batches.items():
            for g, group in enumerate(groups):
                for row in rows:
                    records += await asyncio.gather(*(one(row, item, len(group), f"{row}-b{g}-{i}")
                                                      for i, item in enumerate(group)))
                    progress(1)
    finally:
        engine.shutdown()
    return records


@dataclass(frozen=True)
class Item:
    """One task's prompt: its context as completer builds it (what the policy reads), and its class."""

    task: str
    length_class: str
    ctx: object  # types.Context


def build_prompts(tokenizer_dir: Path, n: int, seed: int) -> list[Item]:
    """Completer's contexts for ``n`` latency-benchmark tasks (half short, half long)."""
    counter = HFTokenCounter(str(tokenizer_dir))
    settings = Settings()  # the default context budget, as on the CPU
    return [Item(task.id, task.length_class, task_context(task, counter, settings)) for task in load_tasks(n, seed)]


def load_records(path: Path) -> list[GpuRecord]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(GpuRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue  # a line cut short when a run was stopped
    return records


def run(shapes: list[str], engines: list[str] | None, out: Path, tokenizer_dir: Path, n: int = 16,
        seed: int = 0, models_dir: Path | None = None, real: RealModels | None = None) -> dict:
    """Run each missing (shape, engine) and write the report over every recorded one.

    With ``real``, ``shapes`` is ignored: the engines run once on those weights (shape ``real``), the
    ones whose drafter has no model skipped with a line on stderr."""
    import sys

    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    path = out / "gpu-latency-records.jsonl"
    done = {(r.shape, r.engine) for r in load_records(path)}
    if real is not None:
        shapes, folders = [REAL], real.folders()
    else:
        folders = shape_folders(models_dir or cache_dir() / "shape-models", tokenizer_dir)
    prompts = build_prompts(tokenizer_dir, n, seed)
    batches = {c: [[p for p in prompts if p.length_class == c][:BATCH]] for c in (SHORT, LONG)}
    specs = [s for s in engine_specs() if engines is None or s.name in engines]
    todo = []
    for shape in shapes:
        for spec in specs:
            if not runnable(spec, folders, shape):
                print(f"completer: skipping engine {spec.name}: no {spec.method} model given", file=sys.stderr)
            elif (shape, spec.name) not in done:
                todo.append((shape, spec))
    started = time.time()
    with tqdm(total=sum(len(prompts) * len(s.rows) + 2 * len(s.rows) for _, s in todo), desc="bench gpu",
              unit="req") as bar:
        for shape, spec in todo:
            records = asyncio.run(_run_engine(spec, shape, folders, prompts, batches, bar.update))
            with path.open("a") as f:
                f.writelines(json.dumps(asdict(r)) + "\n" for r in records)
    return write_report(load_records(path), out, time.time() - started)


def summarize(records: list[GpuRecord]) -> list[dict]:
    """One row per (shape, batch, class, config): p50 latency, tokens/s, acceptance length, and the
    speedup against the target alone of the same shape, batch and class (ratio of p50s)."""
    groups: dict[tuple, list[GpuRecord]] = {}
    for r in records:
        groups.setdefault((r.shape, r.batch, r.length_class, r.config), []).append(r)
    rows = []
    for (shape, batch, length_class, config), recs in sorted(groups.items()):
        base = groups.get((shape, batch, length_class, BASELINE))
        lat = [r.latency_s for r in recs]
        # a step after the first token gives 1 + its accepted drafts (vLLM 0.26 reports no steps per request)
        steps = sum(r.verify_steps or max(r.tokens - 1 - r.accepted_tokens, 0) for r in recs if r.draft_tokens)
        p50 = percentile(lat, 50)
        rows.append({"shape": shape, "batch": batch, "class": length_class, "config": config, "n": len(recs),
                     "p50_ms": round(p50 * 1000, 2), "mean_ms": round(statistics.fmean(lat) * 1000, 2),
                     "tokens_per_s": round(sum(r.tokens for r in recs) / sum(lat) * batch, 1) if sum(lat) else 0.0,
                     "acceptance_length": round(1 + sum(r.accepted_tokens for r in recs) / steps, 2) if steps else None,
                     "speedup": round(percentile([b.latency_s for b in base], 50) / p50, 3) if base and p50 else None})
    return rows


# rows whose acceptance is not set synthetically: prompt lookup drafts whatever the random-weight target
# repeats of itself (acceptance lengths of 5.5 at k = 5 here), which says nothing about real code
NOT_COMPARABLE = ("ngram_gpu",)


def summary_figures(rows: list[dict]) -> dict:
    """Per shape, batch and class: the policy's speedup, the best fixed configuration's (bypass rows
    and NOT_COMPARABLE ones aside), and the policy against that best (1.0 = as fast)."""
    out = {}
    for row in rows:
        if not row["config"].startswith(POLICY):
            continue
        peers = [r for r in rows if (r["shape"], r["batch"], r["class"]) == (row["shape"], row["batch"], row["class"])
                 and not r["config"].startswith(POLICY) and r["speedup"] is not None and "bypass" not in r["config"]
                 and not r["config"].startswith(NOT_COMPARABLE)]
        best = max(peers, key=lambda r: r["speedup"], default=None)
        variant = row["config"][len(POLICY):].strip(" ()").replace(" ", "_")
        key = f"{row['shape']}_b{row['batch']}_{row['class']}" + (f"_{variant}" if variant else "")
        out[key] = {"policy": row["speedup"], "best_fixed": best["config"] if best else None,
                    "best_fixed_speedup": best["speedup"] if best else None,
                    "policy_vs_best": round(row["speedup"] / best["speedup"], 3) if best and row["speedup"] else None}
    return out


def write_report(records: list[GpuRecord], out: Path, wall_s: float) -> dict:
    from completer.bench.latency import machine_description, vllm_version

    rows = summarize(records)
    result = {"machine": gpu_description() + "; host " + machine_description(), "vllm": vllm_version(),
              "command": "completer bench latency --gpu", "wall_s_this_call": round(wall_s, 1),
              "weights": "real" if any(r.shape == REAL for r in records) else "random",
              "k": K, "eagle3_acceptance_length": EAGLE3_LENGTH, "draft_rate": DRAFT_RATE, "lengths": LENGTHS,
              "summary": summary_figures(rows), "rows": rows}
    (out / "gpu-latency.json").write_text(json.dumps(result, indent=1))
    (out / "gpu-latency.md").write_text(markdown(result))
    plot(rows, out / "gpu-latency.png")
    return result


def gpu_description() -> str:
    try:
        import torch

        return f"{torch.cuda.get_device_name(0)} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
    except Exception:
        return "no CUDA device"


def markdown(result: dict) -> str:
    weights = ("real weights and real acceptance (shape `real`)" if result.get("weights") == "real" else
               f"random weights at the real shapes, synthetic acceptance (EAGLE-3 acceptance length "
               f"{result['eagle3_acceptance_length']}, draft {result['draft_rate']} per position)")
    lines = [f"# Latency on a GPU: {result['machine']}", "",
             f"vLLM {result['vllm']}; `{result['command']}`; {weights}; short {result['lengths'][SHORT]} tokens, long "
             f"{result['lengths'][LONG]}; speedup = target alone's p50 / the row's p50, same shape, batch and class.",
             "", "| shape | batch | class | config | n | p50 ms | tokens/s | acc. len | speedup |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['shape']} | {r['batch']} | {r['class']} | {r['config']} | {r['n']} | {r['p50_ms']:.1f} "
                     f"| {r['tokens_per_s']:.0f} | {r['acceptance_length'] or '–'} | "
                     f"{'–' if r['speedup'] is None else format(r['speedup'], '.2f') + '×'} |")
    lines += ["", "![speedup](gpu-latency.png)", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Speedup against the target alone, one panel per shape and batch, bars per config and class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["shape"], r["batch"]) for r in rows})
    if not panels:
        return
    configs = sorted({r["config"] for r in rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for ax, (shape, batch) in zip(axes[0], panels):
        for j, length_class in enumerate((SHORT, LONG)):
            values = [next((r["speedup"] or 0 for r in rows if (r["shape"], r["batch"], r["class"], r["config"])
                            == (shape, batch, length_class, c)), 0) for c in configs]
            ax.barh([i + 0.4 * j for i in range(len(configs))], values, height=0.4, label=length_class)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set_yticks([i + 0.2 for i in range(len(configs))], configs, fontsize=7)
        ax.set_title(f"{shape}, batch {batch}")
        ax.set_xlabel("speedup vs target alone")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
